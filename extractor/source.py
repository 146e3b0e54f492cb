"""A dump file as message bodies, in chunks: cut on a reader thread, encoded by the workers.

One reader thread per file decompresses it and cuts it into chunks of whole records
(:mod:`extractor.cutting`); each chunk goes to the worker pool (:mod:`extractor.workers`)
as soon as it is cut (with a :class:`~extractor.delta.Selection`, only the records it
picks, and each record's digest goes into the new manifest). At most ``ahead`` chunks are
cut and not yet handed out, so memory
stays bounded whatever the file size, and chunks come out in file order (the order the
consumers see within one file does not matter to them, but it keeps a break easy to read:
everything before it, nothing after).
"""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from common.lifecycle import AsyncResource
from extractor.cutting import RawChunk, cut
from extractor.delta import Selection, select_chunks
from extractor.dumpfile import DumpError, DumpFile
from extractor.packing import Packing
from extractor.workers import Encoded, Job, WorkerDied, Workers

_Item = asyncio.Future[Encoded] | DumpError | WorkerDied | None


@dataclass(frozen=True, slots=True)
class Chunk:
    """Message bodies for ``records`` consecutive records; ``fraction`` of the file read."""

    bodies: list[bytes]
    records: int
    fraction: float


class ChunkReader(AsyncResource):
    """Async reader of one dump file as message bodies.

    ``next()`` returns ``None`` at the end of the file and raises
    :class:`~extractor.dumpfile.DumpError` (or :class:`~extractor.workers.WorkerDied`)
    where the file breaks, after every chunk before the break has been handed out.
    """

    def __init__(
        self,
        dump: DumpFile,
        packing: Packing,
        workers: Workers,
        *,
        chunk_records: int,
        chunk_bytes: int,
        ahead: int = 2,
        selection: Selection | None = None,
    ) -> None:
        self._dump = dump
        self._packing = packing
        self._workers = workers
        self._cuts = cut(dump, max_records=chunk_records, max_bytes=chunk_bytes)
        if selection is not None:  # digested on the reader thread; only the picked are sent
            self._cuts = select_chunks(
                self._cuts, selection, max_records=chunk_records, max_bytes=chunk_bytes
            )
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dump-reader")
        self._queue: asyncio.Queue[_Item] = asyncio.Queue(maxsize=max(1, ahead))
        self._feeder: asyncio.Task[None] | None = None
        self._broken: DumpError | WorkerDied | None = None
        self._ended = False
        self._closed = False

    async def next(self) -> Chunk | None:
        if self._closed:
            raise RuntimeError("ChunkReader is closed")
        if self._broken is not None:
            raise self._broken
        if self._ended:
            return None
        if self._feeder is None:
            self._feeder = asyncio.ensure_future(self._feed())
        item = await self._queue.get()
        if item is None:
            self._ended = True
            return None
        if isinstance(item, DumpError | WorkerDied):
            self._broken = item
            raise item
        try:
            encoded = await item
        except WorkerDied as e:
            self._broken = e
            raise
        if encoded.error is not None:
            self._broken = DumpError(encoded.error)
            if not encoded.bodies:
                raise self._broken
        return Chunk(encoded.bodies, encoded.records, encoded.fraction)

    async def close(self) -> None:
        """Stop cutting, drop what was cut and not handed out, close the file."""
        if self._closed:
            return
        self._closed = True
        if self._feeder is not None:
            self._feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._feeder
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if isinstance(item, asyncio.Future):
                item.cancel()
                with contextlib.suppress(asyncio.CancelledError, WorkerDied):
                    await item  # retrieved: an error of a chunk never handed out is moot
        loop = asyncio.get_running_loop()
        try:  # queued behind a cut in progress, so the generator is not running
            await loop.run_in_executor(self._thread, self._cuts.close)
        finally:
            self._thread.shutdown(wait=False)

    async def _feed(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while (raw := await loop.run_in_executor(self._thread, self._cut)) is not None:
                encoding = self._workers.submit(Job(self._dump, self._packing, raw))
                try:
                    await self._queue.put(encoding)
                except asyncio.CancelledError:
                    encoding.cancel()
                    raise
            await self._queue.put(None)
        except (DumpError, WorkerDied) as e:
            await self._queue.put(e)
        except Exception as e:  # noqa: BLE001 - handed on: the run stops with it, never waits
            # Anything else on the reader thread (the state folder's disk full, an id the
            # manifest cannot hold) ends the run as a broken dump does, naming the file.
            broken = DumpError(f"{self._dump.path}: reading stopped: {e!r}")
            broken.__cause__ = e
            await self._queue.put(broken)

    def _cut(self) -> RawChunk | None:
        """Runs on the reader thread."""
        return next(self._cuts, None)
