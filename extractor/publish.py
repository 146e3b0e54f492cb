"""``extractor publish``: stream dump files onto their exchanges, confirmed, in order.

Per file: the records (batched, or one per message with ``single``; parsed by the worker
processes, :mod:`extractor.workers`), then, once every one of them is confirmed, one
``file_complete``. After the last file, one
``extraction_complete`` on each of the four exchanges. When a file breaks mid-way
(:class:`~extractor.xmlparse.DumpError`) everything published before the break is
confirmed before the error propagates, and no completion message is sent; so it is when
a worker process dies (:class:`~extractor.workers.WorkerDied`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import structlog

from common.records import DataType
from extractor.broker import ConfirmingPublisher
from extractor.envelopes import extraction_complete_body, file_complete_body
from extractor.packing import DEFAULT_LIMIT, DEFAULT_MAX_MESSAGE_BYTES, Packing
from extractor.progress import reporter
from extractor.source import ChunkReader
from extractor.workers import WorkerDied, Workers
from extractor.xmlparse import DumpError, DumpFile

log = structlog.get_logger("extractor")

TYPE_ORDER = (DataType.LABELS, DataType.ARTISTS, DataType.MASTERS, DataType.RELEASES)
# Records at least in a chunk sent to a worker (a multiple of the batch size), so that
# what crosses between the processes is large next to the cost of one round trip.
_CHUNK_RECORDS = 250


class UsageError(ValueError):
    """The paths given cannot make one run (missing, no dumps, mixed versions)."""


@dataclass(frozen=True, slots=True)
class PublishOptions:
    batch_size: int = 500
    single: bool = False
    # A batch message closes at batch_size records or max_message_bytes, whichever first.
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    # The largest message the consumers accept (their AMQP_MAX_MESSAGE_BYTES).
    message_limit: int = DEFAULT_LIMIT
    workers: int = 1
    max_in_flight: int = 512
    max_in_flight_bytes: int = 64 * 1024 * 1024
    confirm_timeout: float = 120.0
    progress_every: int = 100_000

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
    """Publish every file, then ``extraction_complete``; return the record count per type."""
    if not dumps:
        raise UsageError("no dump files to publish")
    started = datetime.now(UTC)
    counts: dict[DataType, int] = {}
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
                counts[dump.data_type] = await publish_file(
                    publisher, workers, dump, options, progress_stream
                )
        except (DumpError, WorkerDied):
            await publisher.flush()  # what was published before the break is confirmed
            raise
        body = extraction_complete_body(dumps[0].version, started, counts)
        for data_type in DataType:
            await publisher.publish(data_type, body)
        await publisher.flush()
    counts_by_name = {t.value: n for t, n in counts.items()}
    log.info("extraction complete", version=dumps[0].version, record_counts=counts_by_name)
    return counts


async def publish_file(
    publisher: ConfirmingPublisher,
    workers: Workers,
    dump: DumpFile,
    options: PublishOptions,
    progress_stream: IO[str] | None = None,
) -> int:
    """Publish one file's records and its ``file_complete``; return the record count."""
    exchange = publisher.exchange_name(dump.data_type)
    log.info(
        "publishing",
        file=str(dump.path),
        exchange=exchange,
        single=options.single,
        workers=workers.count,
    )
    report = reporter(
        dump.path.name,
        "records",
        every=options.progress_every,
        stream=progress_stream,
        size=dump.path.stat().st_size,  # the fraction is of the compressed file read
    )
    start = time.monotonic()
    total = messages = 0
    reader = ChunkReader(
        dump,
        options.packing(),
        workers,
        chunk_records=_chunk_records(options),
        chunk_bytes=options.max_message_bytes,
        ahead=2 * workers.count,
    )
    async with reader:
        while (chunk := await reader.next()) is not None:
            for body in chunk.bodies:
                await publisher.publish(dump.data_type, body)
            total += chunk.records
            messages += len(chunk.bodies)
            report.update(total, chunk.fraction)
    await publisher.flush()  # file_complete only once every record is confirmed
    await publisher.publish(
        dump.data_type, file_complete_body(dump.data_type, dump.path.name, dump.version, total)
    )
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
    )
    return total


def _chunk_records(options: PublishOptions) -> int:
    if options.single:
        return _CHUNK_RECORDS
    return -(-_CHUNK_RECORDS // options.batch_size) * options.batch_size
