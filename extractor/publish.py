"""``extractor publish``: stream dump files onto their exchanges, confirmed, in order.

Per file: the records (parsed by :mod:`extractor.workers`), then, once every one is
confirmed, one ``file_complete``; after the last file, one ``extraction_complete`` on each
exchange. A file's confirms and its ``file_complete`` are awaited while the next file's
records are published (:mod:`extractor.files` opens it ahead). When a file breaks mid-way
(``DumpError``) or a worker dies (``WorkerDied``), the files before it are completed and
everything published before is confirmed before the error propagates; the broken file
gets no ``file_complete`` and the run no ``extraction_complete``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import structlog

from common.records import DataType
from extractor.broker import ConfirmingPublisher
from extractor.delta import Selection, open_selection
from extractor.envelopes import delete_bodies, extraction_complete_body, file_complete_body
from extractor.files import FilesAhead, OpenFile, UsageError, collect_dumps
from extractor.manifest import ManifestWriter
from extractor.packing import DEFAULT_LIMIT, DEFAULT_MAX_MESSAGE_BYTES, Packing
from extractor.progress import Reporter, reporter
from extractor.source import ChunkReader
from extractor.state import StateBusy, state_folder
from extractor.workers import Workers
from extractor.xmlparse import DumpFile

__all__ = ["PublishOptions", "UsageError", "collect_dumps", "publish_dumps"]

log = structlog.get_logger("extractor")
_CHUNK_RECORDS = 250  # per chunk to a worker: large next to the cost of one round trip


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
    async with (
        Workers(options.workers) as workers,
        ConfirmingPublisher(
            url,
            prefix,
            max_in_flight=options.max_in_flight,
            max_in_flight_bytes=options.max_in_flight_bytes,
            confirm_timeout=options.confirm_timeout,
        ) as publisher,
        FilesAhead(dumps, _opener(workers, options)) as files,
    ):
        pending = _Pending()
        try:
            sent = await _publish_files(publisher, files, options, progress_stream, pending)
            counts = {t: s.records for t, s in sent.items()}
            bases = {t: s.base_version for t, s in sent.items() if s.base_version is not None}
            body = extraction_complete_body(dumps[0].version, started, counts, bases)
            for data_type in DataType:
                await publisher.publish(data_type, body)
            await publisher.flush()
            for manifest in pending.manifests:
                manifest.commit()
        finally:
            await pending.settle()
            for manifest in pending.manifests:
                manifest.discard()  # the ones not committed
    log.info(
        "extraction complete",
        version=dumps[0].version,
        record_counts={t.value: n for t, n in counts.items()},
        delta_from={t.value: v for t, v in bases.items()} or None,
    )
    return counts


async def _publish_files(
    publisher: ConfirmingPublisher,
    files: FilesAhead,
    options: PublishOptions,
    progress_stream: IO[str] | None,
    pending: _Pending,
) -> dict[DataType, Sent]:
    """Every file's records, each one's completion running on behind it."""
    dumps: list[DumpFile] = []
    completing = pending.completing
    try:
        while (file := files.take()) is not None:
            dumps.append(file.dump)
            if file.selection is not None:
                pending.manifests.append(file.selection.new)
            completing.append(await _publish_file(publisher, files, file, options, progress_stream))
        return {d.data_type: await c for d, c in zip(dumps, completing, strict=True)}
    except Exception:
        # A file that breaks (or a worker that dies): the files before it are completed,
        # as they were before the next one was opened, and what was published is confirmed.
        for completion in completing:
            await completion
        await publisher.flush()
        raise


@dataclass(slots=True)
class _Pending:
    """What a run leaves behind it as it goes: each file's completion (its confirms and
    ``file_complete``) and each new manifest, committed once the whole run is confirmed."""

    completing: list[asyncio.Future[Sent]] = field(default_factory=list)
    manifests: list[ManifestWriter] = field(default_factory=list)

    async def settle(self) -> None:
        """Stop the completions still running (a run stopped by another error)."""
        for completion in self.completing:
            completion.cancel()  # a done one stays as it is
        await asyncio.gather(*self.completing, return_exceptions=True)


@dataclass(frozen=True, slots=True)
class Sent:
    """One file published: the records sent and the delta's base version."""

    records: int
    base_version: str | None = None


def _opener(workers: Workers, options: PublishOptions) -> Callable[[DumpFile], OpenFile]:
    """How each file is opened: a delta over its manifest or in full, cut into chunks."""

    def open_file(dump: DumpFile) -> OpenFile:
        selection = open_selection(options.state_dir, dump, full=options.full)
        base = None if selection is None else selection.base_version
        reader = ChunkReader(
            dump,
            replace(options.packing(), base_version=base),
            workers,
            chunk_records=_chunk_records(options),
            chunk_bytes=options.max_message_bytes,
            ahead=2 * workers.count,
            selection=selection,
        )
        return OpenFile(dump, reader, selection)

    return open_file


async def _publish_file(
    publisher: ConfirmingPublisher,
    files: FilesAhead,
    file: OpenFile,
    options: PublishOptions,
    progress_stream: IO[str] | None,
) -> asyncio.Future[Sent]:
    """Publish one file's records (a delta's: and deletions); return the task that sends
    its ``file_complete`` once they are all confirmed."""
    dump, base = file.dump, file.base_version
    label = dump.path.name if base is None else f"{dump.path.name} (delta from {base})"
    log.info(
        "publishing",
        file=str(dump.path),
        exchange=publisher.exchange_name(dump.data_type),
        single=options.single,
        workers=options.workers,
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
    while (chunk := await file.reader.next()) is not None:
        for body in chunk.bodies:
            await publisher.publish(dump.data_type, body)
        total += chunk.records
        messages += len(chunk.bodies)
        report.update(total, chunk.fraction)
        files.poke()
    await file.reader.close()
    if file.selection is not None and base is not None:
        messages += await _publish_deletions(publisher, dump, options, file.selection, base)
    done = _Done(file, total, messages, start, report)
    return asyncio.ensure_future(_complete(publisher, done))


@dataclass(frozen=True, slots=True)
class _Done:
    """A file whose records are all published, not yet confirmed."""

    file: OpenFile
    records: int
    messages: int
    start: float
    report: Reporter


async def _complete(publisher: ConfirmingPublisher, done: _Done) -> Sent:
    """Once the file's records are confirmed, its ``file_complete``, confirmed."""
    dump, base, total = done.file.dump, done.file.base_version, done.records
    selection = done.file.selection
    counts = None if selection is None or base is None else selection.counts.as_dict()
    await publisher.flush()  # file_complete only once every record is confirmed
    body = file_complete_body(
        dump.data_type, dump.path.name, dump.version, total, base_version=base, counts=counts
    )
    await publisher.publish(dump.data_type, body)
    await publisher.flush()
    await done.file.close(keep=True)
    done.report.finish(total)
    elapsed = time.monotonic() - done.start
    log.info(
        "file published",
        file=dump.path.name,
        records=total,
        messages=done.messages + 1,
        seconds=round(elapsed, 3),
        records_per_s=round(total / max(elapsed, 1e-9)),
        delta_from=base,
        counts=counts,
    )
    return Sent(total, base)


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
