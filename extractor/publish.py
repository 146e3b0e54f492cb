"""``extractor publish``: stream dump files onto their exchanges, confirmed, in order.

Per file: the records (parsed by :mod:`extractor.workers`), then, once every one is
confirmed, one ``file_complete``; after the last file, one ``extraction_complete`` on each
exchange. When a file breaks mid-way (``DumpError``) or a worker dies (``WorkerDied``),
everything published before is confirmed before the error propagates, and no completion
message is sent.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import structlog

from common.records import DataType
from extractor.broker import ConfirmingPublisher
from extractor.delta import Selection, open_selection
from extractor.envelopes import delete_bodies, extraction_complete_body, file_complete_body
from extractor.manifest import ManifestWriter
from extractor.packing import DEFAULT_LIMIT, DEFAULT_MAX_MESSAGE_BYTES, Packing
from extractor.progress import reporter
from extractor.source import ChunkReader
from extractor.state import StateBusy, state_folder
from extractor.workers import WorkerDied, Workers
from extractor.xmlparse import DumpError, DumpFile

log = structlog.get_logger("extractor")

TYPE_ORDER = (DataType.LABELS, DataType.ARTISTS, DataType.MASTERS, DataType.RELEASES)
_CHUNK_RECORDS = 250  # per chunk to a worker: large next to the cost of one round trip


class UsageError(ValueError):
    """The paths given cannot make one run (missing, no dumps, mixed versions)."""


@dataclass(frozen=True, slots=True)
class PublishOptions:
    batch_size: int = 500
    single: bool = False
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES  # or batch_size, whichever first
    message_limit: int = DEFAULT_LIMIT  # the consumers' AMQP_MAX_MESSAGE_BYTES
    workers: int = 1
    max_in_flight: int = 512
    max_in_flight_bytes: int = 64 * 1024 * 1024
    confirm_timeout: float = 120.0
    progress_every: int = 100_000
    # Where the manifests live (None: none kept, every file sent in full); ``full``: send
    # every record even when a manifest allows a delta.
    state_dir: Path | None = None
    full: bool = False

    def packing(self) -> Packing:
        return Packing(self.single, self.batch_size, self.max_message_bytes, self.message_limit)


def collect_dumps(paths: Sequence[Path]) -> list[DumpFile]:
    """Files as given; a folder's ``discogs_*`` dumps in the order labels..releases."""
    dumps: list[DumpFile] = []
    for path in paths:
        if path.is_dir():
            found = _dumps_in(path)
            if not found:
                raise UsageError(f"{path}: no discogs_YYYYMMDD_<type>.xml[.gz] files in it")
            dumps.extend(found)
        elif path.is_file():
            try:
                dumps.append(DumpFile.from_path(path))
            except DumpError as e:
                raise UsageError(str(e)) from e
        else:
            raise UsageError(f"{path}: no such file or folder")
    _check_one_run(dumps)
    return dumps


def _dumps_in(folder: Path) -> list[DumpFile]:
    found = []
    for path in sorted(folder.iterdir()):
        try:
            found.append(DumpFile.from_path(path))
        except DumpError:
            continue  # checksum files, partial downloads, anything else
    return sorted(found, key=lambda d: TYPE_ORDER.index(d.data_type))


def _check_one_run(dumps: list[DumpFile]) -> None:
    versions = sorted({d.version for d in dumps})
    if len(versions) > 1:
        raise UsageError(f"files of several dump versions given ({', '.join(versions)}): one a run")
    seen: set[DataType] = set()
    for dump in dumps:
        if dump.data_type in seen:
            raise UsageError(f"{dump.path}: a second {dump.data_type} file in one run")
        seen.add(dump.data_type)


async def publish_dumps(
    dumps: Sequence[DumpFile],
    *,
    url: str,
    prefix: str,
    options: PublishOptions,
    progress_stream: IO[str] | None = None,
) -> dict[DataType, int]:
    """Publish every file, then ``extraction_complete``; return the records sent per type.

    With a state folder, each type's new manifest replaces the old one once the whole
    run is confirmed: a run that breaks leaves every manifest as it was.
    """
    if not dumps:
        raise UsageError("no dump files to publish")
    try:
        with state_folder(options.state_dir):
            return await _publish_all(dumps, url, prefix, options, progress_stream)
    except StateBusy as e:
        raise UsageError(str(e)) from e


async def _publish_all(
    dumps: Sequence[DumpFile],
    url: str,
    prefix: str,
    options: PublishOptions,
    progress_stream: IO[str] | None,
) -> dict[DataType, int]:
    started = datetime.now(UTC)
    counts: dict[DataType, int] = {}
    bases: dict[DataType, str] = {}
    manifests: list[ManifestWriter] = []
    async with (
        Workers(options.workers) as workers,
        ConfirmingPublisher(
            url,
            prefix,
            max_in_flight=options.max_in_flight,
            max_in_flight_bytes=options.max_in_flight_bytes,
            confirm_timeout=options.confirm_timeout,
        ) as publisher,
    ):
        try:
            for dump in dumps:
                sent = await publish_file(publisher, workers, dump, options, progress_stream)
                counts[dump.data_type] = sent.records
                if sent.base_version is not None:
                    bases[dump.data_type] = sent.base_version
                if sent.manifest is not None:
                    manifests.append(sent.manifest)
            body = extraction_complete_body(dumps[0].version, started, counts, bases)
            for data_type in DataType:
                await publisher.publish(data_type, body)
            await publisher.flush()
            for manifest in manifests:
                manifest.commit()
        except (DumpError, WorkerDied):
            await publisher.flush()  # what was published before the break is confirmed
            raise
        finally:
            for manifest in manifests:
                manifest.discard()  # the ones not committed
    counts_by_name = {t.value: n for t, n in counts.items()}
    deltas = {t.value: v for t, v in bases.items()}
    log.info(
        "extraction complete",
        version=dumps[0].version,
        record_counts=counts_by_name,
        delta_from=deltas or None,
    )
    return counts


@dataclass(frozen=True, slots=True)
class Sent:
    """One file published: the records sent, the delta's base version, the new manifest."""

    records: int
    base_version: str | None = None
    manifest: ManifestWriter | None = None


async def publish_file(
    publisher: ConfirmingPublisher,
    workers: Workers,
    dump: DumpFile,
    options: PublishOptions,
    progress_stream: IO[str] | None = None,
) -> Sent:
    """Publish one file's records (a delta's: and deletions) and its ``file_complete``."""
    selection = open_selection(options.state_dir, dump, full=options.full)
    base = None if selection is None else selection.base_version
    kept = False
    try:
        total = await _publish_records(
            publisher, workers, dump, options, selection=selection, progress_stream=progress_stream
        )
        kept = True
    finally:
        if selection is not None:
            selection.close(keep=kept)
    return Sent(total, base, None if selection is None else selection.new)


async def _publish_records(
    publisher: ConfirmingPublisher,
    workers: Workers,
    dump: DumpFile,
    options: PublishOptions,
    *,
    selection: Selection | None,
    progress_stream: IO[str] | None,
) -> int:
    base = None if selection is None else selection.base_version
    label = dump.path.name if base is None else f"{dump.path.name} (delta from {base})"
    log.info(
        "publishing",
        file=str(dump.path),
        exchange=publisher.exchange_name(dump.data_type),
        single=options.single,
        workers=workers.count,
        delta_from=base,
    )
    report = reporter(
        label,
        "records",
        every=options.progress_every,
        stream=progress_stream,
        size=dump.path.stat().st_size,  # the fraction is of the compressed file read
    )
    start = time.monotonic()
    total = messages = 0
    reader = ChunkReader(
        dump,
        replace(options.packing(), base_version=base),
        workers,
        chunk_records=_chunk_records(options),
        chunk_bytes=options.max_message_bytes,
        ahead=2 * workers.count,
        selection=selection,
    )
    async with reader:
        while (chunk := await reader.next()) is not None:
            for body in chunk.bodies:
                await publisher.publish(dump.data_type, body)
            total += chunk.records
            messages += len(chunk.bodies)
            report.update(total, chunk.fraction)
    counts = None
    if selection is not None and base is not None:
        messages += await _publish_deletions(publisher, dump, options, selection, base)
        counts = selection.counts.as_dict()
    await publisher.flush()  # file_complete only once every record is confirmed
    body = file_complete_body(
        dump.data_type, dump.path.name, dump.version, total, base_version=base, counts=counts
    )
    await publisher.publish(dump.data_type, body)
    await publisher.flush()
    report.finish(total)
    elapsed = time.monotonic() - start
    log.info(
        "file published",
        file=dump.path.name,
        records=total,
        messages=messages + 1,
        seconds=round(elapsed, 3),
        records_per_s=round(total / max(elapsed, 1e-9)),
        delta_from=base,
        counts=counts,
    )
    return total


async def _publish_deletions(
    publisher: ConfirmingPublisher,
    dump: DumpFile,
    options: PublishOptions,
    selection: Selection,
    base: str,
) -> int:
    """The ids the new dump no longer holds, in messages; return how many messages."""
    messages = 0
    for ids in selection.deleted(options.batch_size):
        for body in delete_bodies(
            dump.data_type, dump.version, base, ids, options.max_message_bytes
        ):
            await publisher.publish(dump.data_type, body)
            messages += 1
    return messages


def _chunk_records(options: PublishOptions) -> int:
    if options.single:
        return _CHUNK_RECORDS
    return -(-_CHUNK_RECORDS // options.batch_size) * options.batch_size
