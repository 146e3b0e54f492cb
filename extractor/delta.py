"""Which records of a dump file to send: all of them, or only what changed since a manifest.

On the reader thread, each cut record's id is read off its bytes (the ``id`` attribute of
a release or master, the first ``<id>`` element of an artist or label) and its raw bytes
are digested, without parsing; both go into the new manifest. Against the old manifest a
record is added (an id it lacks), changed (another digest) or unchanged. Only the added
and changed go on to the parse workers, gathered into chunks of their own
(:func:`select_chunks`) that keep each record's number and position in the file for the
errors. After the file, the ids of the old manifest not found are the deletions.
"""

from __future__ import annotations

import re
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
    digest,
    manifest_path,
    read_info,
)

log = structlog.get_logger("extractor")

# The record's own id, read without parsing; a record where it is not found is sent.
_ID = {
    DataType.RELEASES: re.compile(rb'<release\s[^>]*?\bid="\s*([0-9]+)\s*"'),
    DataType.MASTERS: re.compile(rb'<master\s[^>]*?\bid="\s*([0-9]+)\s*"'),
    DataType.ARTISTS: re.compile(rb"<id>\s*([0-9]+)\s*</id>"),
    DataType.LABELS: re.compile(rb"<id>\s*([0-9]+)\s*</id>"),
}


def record_id(data_type: DataType, blob: bytes, start: int, end: int) -> int | None:
    pattern = _ID[data_type]
    m = (
        pattern.match(blob, start, end)
        if data_type in _ATTRIBUTE
        else pattern.search(blob, start, end)
    )
    return int(m.group(1)) if m is not None else None


_ATTRIBUTE = frozenset({DataType.RELEASES, DataType.MASTERS})


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

    @property
    def base_version(self) -> str | None:
        return None if self.old is None else self.old.info.version

    def close(self, *, keep: bool) -> None:
        """Done with the file: the new manifest waits for its commit if ``keep``."""
        if self.old is not None:
            self.old.close()
        if not keep:
            self.new.discard()

    def pick(self, chunk: RawChunk) -> list[int]:
        """The indexes of the records of ``chunk`` to send."""
        picked = []
        blob, old, counts = chunk.blob, self.old, self.counts
        for index, (start, end) in enumerate(chunk.spans):
            ident = record_id(self.data_type, blob, start, end)
            if ident is None:  # the parse worker will say what is wrong with it
                picked.append(index)
                continue
            new = digest(memoryview(blob)[start:end])
            self.new.add(ident, new)
            if old is None:
                picked.append(index)
                continue
            stored = old.find(ident)
            if stored == new:
                counts.unchanged += 1
                continue
            if stored is None:
                counts.added += 1
            else:
                counts.changed += 1
            picked.append(index)
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
    gather = _Gather(max_records, max_bytes)
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


def _advance(blob: bytes, line: int, column: int, at: int, to: int) -> tuple[int, int]:
    """The line and column of ``blob[to]`` when ``blob[at]`` is at ``line``, ``column``."""
    newlines = blob.count(b"\n", at, to)
    if not newlines:
        return line, column + to - at
    return line + newlines, to - blob.rfind(b"\n", at, to)


@dataclass(slots=True)
class _Gather:
    max_records: int
    max_bytes: int
    parts: list[bytes] = field(default_factory=list)
    spans: list[tuple[int, int]] = field(default_factory=list)
    origins: list[tuple[int, int, int]] = field(default_factory=list)
    size: int = 0
    fraction: float = 0.0

    def add(self, chunk: RawChunk, picked: list[int]) -> Iterator[RawChunk]:
        self.fraction = chunk.fraction
        line, column, at = chunk.line, chunk.column, 0
        for index in picked:
            start, end = chunk.spans[index]
            line, column = _advance(chunk.blob, line, column, at, start)
            at = start
            self.parts.append(chunk.blob[start:end])
            self.spans.append((self.size, self.size + end - start))
            self.origins.append((chunk.first + index, line, column))
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
