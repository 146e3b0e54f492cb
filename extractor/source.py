"""A dump file as message bodies, in chunks: cut on a reader thread, encoded by the workers.

One reader thread per file decompresses it and cuts it into chunks of whole records
(:mod:`extractor.cutting`); each chunk goes to the worker pool (:mod:`extractor.workers`)
as soon as it is cut. With a :class:`~extractor.delta.Selection` the workers also digest
each record for the new manifest; a delta's chunks go to them first to be picked
(:mod:`extractor.picking`), and only the picked records, gathered, to be encoded. At most
``ahead`` chunks are cut and not yet handed out (and as many being picked), so memory
stays bounded whatever the file size, and chunks come out in file order (the order the
consumers see within one file does not matter to them, but it keeps a break easy to read:
everything before it, nothing after).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from common.lifecycle import AsyncResource
from extractor.cutting import RawChunk, cut
from extractor.delta import Gather, Selection
from extractor.dumpfile import DumpError, DumpFile
from extractor.packing import Packing
from extractor.picking import Picked, pick
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
        self._selection = selection
        self._gather = Gather(chunk_records, chunk_bytes)
        self._ahead = max(1, ahead)
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
        return self._handed(encoded)

    def _handed(self, encoded: Encoded) -> Chunk:
        if encoded.picked is not None and self._selection is not None:
            self._selection.take(encoded.picked)  # in file order: chunks come out in it
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
        delta = self._selection is not None and self._selection.old is not None
        try:
            if delta:
                await self._feed_delta(loop)
            else:
                while (raw := await loop.run_in_executor(self._thread, self._cut)) is not None:
                    await self._send(raw, manifest=self._selection is not None)
            await self._queue.put(None)
        except (DumpError, WorkerDied) as e:
            await self._queue.put(e)

    async def _feed_delta(self, loop: asyncio.AbstractEventLoop) -> None:
        """Each cut chunk to a worker to be picked; the picked records, in file order,
        gathered and sent to be encoded. Where the file breaks, what was cut before the
        break is picked and sent first."""
        assert self._selection is not None
        picking: deque[tuple[RawChunk, asyncio.Future[Picked]]] = deque()
        cutting = loop.run_in_executor(self._thread, self._cut)
        try:
            try:
                while (raw := await cutting) is not None:
                    cutting = loop.run_in_executor(self._thread, self._cut)  # while it is picked
                    picking.append((raw, self._workers.run(pick, self._selection.job(raw))))
                    while picking and (len(picking) > self._ahead or picking[0][1].done()):
                        await self._gathered(*picking.popleft())
            except DumpError:
                await self._drain(picking)  # what was cut before the break goes first
                raise
            await self._drain(picking)
        finally:
            cutting.cancel()  # cancelled, or a worker died: nobody waits for the rest
            for _, future in picking:
                future.cancel()

    async def _drain(self, picking: deque[tuple[RawChunk, asyncio.Future[Picked]]]) -> None:
        while picking:
            await self._gathered(*picking.popleft())
        if (rest := self._gather.take()) is not None:
            await self._send(rest, manifest=False)

    async def _gathered(self, raw: RawChunk, picking: asyncio.Future[Picked]) -> None:
        picked = await picking
        assert self._selection is not None
        self._selection.take(picked)
        for chunk in self._gather.add(raw, picked):
            await self._send(chunk, manifest=False)

    async def _send(self, raw: RawChunk, *, manifest: bool) -> None:
        encoding = self._workers.submit(Job(self._dump, self._packing, raw, manifest))
        try:
            await self._queue.put(encoding)
        except asyncio.CancelledError:
            encoding.cancel()
            raise

    def _cut(self) -> RawChunk | None:
        """Runs on the reader thread."""
        return next(self._cuts, None)
