"""Dump records as encoded message bodies, read in a worker thread one chunk ahead.

Parsing and normalising XML is CPU-bound (a few thousand releases a second), so it never
runs on the event loop: each chunk of records is parsed *and* serialised in a worker
thread while the loop publishes the previous chunk and handles confirms. Each reader has
its own single thread: lxml documents must not move between threads (an ``iterparse``
resumed on another thread of a shared pool corrupts lxml's memory).
At most two chunks exist at a time (the one being published and the one being read), so
memory stays bounded whatever the file size.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from common.lifecycle import AsyncResource
from common.records import Record
from extractor.packing import RecordTooLarge
from extractor.xmlparse import DumpError, DumpFile, Progress, iter_records

# Message bodies of consecutive records; the int is the number of the first (from 1).
Encoder = Callable[[list[Record], int], list[bytes]]


@dataclass(frozen=True, slots=True)
class Chunk:
    """Message bodies for ``records`` consecutive records; ``fraction`` of the file read."""

    bodies: list[bytes]
    records: int
    fraction: float


class ChunkReader(AsyncResource):
    """Async reader of one dump file in chunks of ``chunk_size`` records.

    ``next()`` returns ``None`` at the end of the file and raises
    :class:`~extractor.xmlparse.DumpError` where the file breaks, after every chunk before
    the break has been handed out.
    """

    def __init__(self, dump: DumpFile, chunk_size: int, encode: Encoder) -> None:
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        self._chunk_size = chunk_size
        self._encode = encode
        self._progress: list[Progress] = []
        self._records = iter_records(dump, progress=self._progress)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dump-reader")
        self._pending: asyncio.Future[Chunk | None] | None = None
        self._broken: DumpError | None = None
        self._taken = 0
        self._closed = False

    async def next(self) -> Chunk | None:
        if self._closed:
            raise RuntimeError("ChunkReader is closed")
        pending = self._pending or self._read_ahead()
        self._pending = None
        chunk = await pending
        if chunk is not None:
            self._pending = self._read_ahead()
        return chunk

    async def close(self) -> None:
        """Wait for a read in progress (its result is dropped), then close the file."""
        if self._closed:
            return
        self._closed = True
        if self._pending is not None:
            await asyncio.wait([self._pending])
            if not self._pending.cancelled():
                self._pending.exception()  # retrieved: a read-ahead error is moot now
        try:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._records.close)
        finally:
            self._thread.shutdown(wait=False)

    def _read_ahead(self) -> asyncio.Future[Chunk | None]:
        return asyncio.get_running_loop().run_in_executor(self._thread, self._take)

    def _take(self) -> Chunk | None:
        """Runs in a worker thread: parse, normalise and encode the next chunk.

        Records read before a break in the file still make a (short) chunk; the
        :class:`DumpError` is raised by the read after it.
        """
        if self._broken is not None:
            raise self._broken
        records: list[Record] = []
        try:
            for record in itertools.islice(self._records, self._chunk_size):
                records.append(record)  # kept one by one: a break keeps what came before
        except DumpError as e:
            if not records:
                raise
            self._broken = e
        if not records:
            return None
        fraction = self._progress[0].fraction if self._progress else 0.0
        first, self._taken = self._taken + 1, self._taken + len(records)
        try:
            bodies = self._encode(records, first)
        except RecordTooLarge as e:
            if not e.before:
                raise
            self._broken = e  # the records before it in this chunk still go
            return Chunk(e.before, e.records_before, fraction)
        return Chunk(bodies, len(records), fraction)
