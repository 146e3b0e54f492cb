"""Which records of a dump file to send: all of them, or only what changed since a manifest.

Each cut chunk's records are digested and looked up in the old manifest by a worker
(:func:`extractor.picking.pick`); here, in the main process, what it found is recorded
(:meth:`Selection.take`): the new manifest's entries, the old ones found, the counts.
Only the added and changed go on to the parse workers, gathered into chunks of their own
(:class:`Gather`) that keep each record's number and position in the file for the
errors. After the file, the ids of the old manifest not found are the deletions.
:func:`select_chunks` does the same on one thread (tests, benchmarks).
"""

from __future__ import annotations

import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from common.records import NORMALISER_VERSION, DataType
from extractor.cutting import RawChunk
from extractor.dumpfile import DumpError, DumpFile
from extractor.manifest import (
    DIGEST,
    ManifestError,
    ManifestInfo,
    ManifestReader,
    ManifestWriter,
    manifest_path,
    read_info,
)
from extractor.picking import OldManifest, Picked, PickJob, pick

log = structlog.get_logger("extractor")


@dataclass(slots=True)
class Counts:
    added: int = 0
    changed: int = 0
    unchanged: int = 0
    deleted: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "added": self.added,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "deleted": self.deleted,
        }


@dataclass(slots=True)
class Selection:
    """One file's records against the old manifest (``old`` None: every record is sent),
    each one's entry written to ``new``."""

    data_type: DataType
    new: ManifestWriter
    old: ManifestReader | None = None
    counts: Counts = field(default_factory=Counts)
    where: OldManifest | None = None  # the old manifest as the workers read it

    def __post_init__(self) -> None:
        if self.old is not None and self.where is None:
            info = self.old.info
            self.where = OldManifest(self.old.path, info.offset, info.count, uuid.uuid4().hex)

    @property
    def base_version(self) -> str | None:
        return None if self.old is None else self.old.info.version

    def close(self, *, keep: bool) -> None:
        """Done with the file: the new manifest waits for its commit if ``keep``."""
        if self.old is not None:
            self.old.close()
        if not keep:
            self.new.discard()

    def job(self, chunk: RawChunk) -> PickJob:
        return PickJob(self.data_type, chunk, self.where)

    def take(self, picked: Picked) -> None:
        """Record what a worker found for one chunk, in the file's order."""
        self.new.extend(picked.entries, picked.first_id, picked.last_id, ordered=picked.ordered)
        if self.old is not None:
            self.old.mark(picked.found)
        counts = self.counts
        counts.added += picked.added
        counts.changed += picked.changed
        counts.unchanged += picked.unchanged

    def pick(self, chunk: RawChunk) -> Picked:
        """:meth:`take` of the worker's part done here."""
        picked = pick(self.job(chunk))
        self.take(picked)
        return picked

    def deleted(self, size: int) -> Iterator[list[str]]:
        """The ids of the old manifest absent from the file, ``size`` at a time."""
        if self.old is None:
            return
        batch: list[str] = []
        for ident in self.old.unseen():
            batch.append(str(ident))
            self.counts.deleted += 1
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch


def open_selection(state_dir: Path | None, dump: DumpFile, *, full: bool) -> Selection | None:
    """How ``dump`` is sent: ``None`` without a state folder (no manifest kept), a delta
    when the folder holds the manifest of an older version of the type, else in full."""
    if state_dir is None:
        return None
    path = manifest_path(state_dir, dump.data_type)
    try:
        reason = _why_full(read_info(path), dump, full)
    except ManifestError as e:
        reason = str(e)
    old = ManifestReader(path) if reason is None else None
    if reason is not None:
        log.info("publishing in full", file=dump.path.name, reason=reason)
    return Selection(dump.data_type, ManifestWriter(state_dir, dump.data_type, dump.version), old)


def _why_full(info: ManifestInfo | None, dump: DumpFile, full: bool) -> str | None:
    if full:
        return "--full given"
    if info is None:
        return f"no manifest of {dump.data_type.value} in the state folder"
    mismatches = (
        (info.data_type is not dump.data_type, f"the manifest is of {info.data_type.value}"),
        (info.digest != DIGEST, f"the manifest's digests are {info.digest}, not {DIGEST}"),
        (
            info.normaliser != NORMALISER_VERSION,
            f"the manifest was made by normaliser {info.normaliser}, not {NORMALISER_VERSION}",
        ),
        (
            info.version >= dump.version,
            f"the manifest is of version {info.version}, not older than {dump.version}",
        ),
    )
    return next((reason for mismatch, reason in mismatches if mismatch), None)


def select_chunks(
    cuts: Iterator[RawChunk], selection: Selection, *, max_records: int, max_bytes: int
) -> Generator[RawChunk, None, None]:
    """The records of ``cuts`` that ``selection`` picks, in chunks of up to ``max_records``
    (closed once past ``max_bytes``); where ``cuts`` breaks, what was picked before the
    break comes first."""
    full = selection.old is None
    gather = Gather(max_records, max_bytes)
    try:
        for chunk in cuts:
            picked = selection.pick(chunk)
            if full:
                yield chunk
                continue
            yield from gather.add(chunk, picked)
    except DumpError:
        if (rest := gather.take()) is not None:
            yield rest
        raise
    if (rest := gather.take()) is not None:
        yield rest


@dataclass(slots=True)
class Gather:
    """The picked records of consecutive chunks, into chunks of their own."""

    max_records: int
    max_bytes: int
    parts: list[bytes] = field(default_factory=list)
    spans: list[tuple[int, int]] = field(default_factory=list)
    origins: list[tuple[int, int, int]] = field(default_factory=list)
    size: int = 0
    fraction: float = 0.0

    def add(self, chunk: RawChunk, picked: Picked) -> Iterator[RawChunk]:
        self.fraction = chunk.fraction
        for index, origin in zip(picked.picked, picked.origins, strict=True):
            start, end = chunk.spans[index]
            self.parts.append(chunk.blob[start:end])
            self.spans.append((self.size, self.size + end - start))
            self.origins.append(origin)
            self.size += end - start
            if len(self.spans) >= self.max_records or self.size >= self.max_bytes:
                yield self._take()

    def take(self) -> RawChunk | None:
        return self._take() if self.spans else None

    def _take(self) -> RawChunk:
        first, line, column = self.origins[0]
        chunk = RawChunk(
            b"".join(self.parts), self.spans, first, line, column, self.fraction, self.origins
        )
        self.parts, self.spans, self.origins, self.size = [], [], [], 0
        return chunk
