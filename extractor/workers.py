"""The worker processes that turn cut records into message bodies.

A worker gets a chunk of records as bytes (:class:`~extractor.cutting.RawChunk`), parses,
normalises, hashes and serialises them and packs them into message bodies
(:func:`encode`); only bytes cross between the processes, many records at a time. With
one worker the same work runs on a thread of the extractor's own process instead.

A worker that dies (killed, out of memory) breaks the pool: every job on it fails with
:class:`WorkerDied`, which stops the run (exit 1) with what came before it confirmed,
never a hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import signal
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures import Future as ConcurrentFuture
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from common.decoding import exit_with_parent, tune_gc
from common.lifecycle import AsyncResource
from common.records import Record
from extractor.cutting import RawChunk
from extractor.dumpfile import DumpError, DumpFile
from extractor.packing import Packing, RecordTooLarge, Where, pack
from extractor.xmlparse import parse_chunk


class WorkerDied(Exception):
    """A worker process ended while it had records to encode; ``str(e)`` is one line."""


@dataclass(frozen=True, slots=True)
class Job:
    dump: DumpFile
    packing: Packing
    chunk: RawChunk


@dataclass(frozen=True, slots=True)
class Encoded:
    """The bodies of the first ``records`` records of a chunk: all of them unless ``error``
    says why the record after them could not be read or sent."""

    bodies: list[bytes]
    records: int
    fraction: float
    error: str | None = None


def encode(job: Job) -> Encoded:
    """Runs in a worker: the message bodies of one chunk (of its records before a bad one)."""
    dump, chunk = job.dump, job.chunk
    records: list[Record] = []
    error = None
    try:
        records.extend(parse_chunk(dump, chunk))
    except DumpError as e:
        error = str(e)
    numbers = None if chunk.origins is None else [o[0] for o in chunk.origins]
    where = Where(str(dump.path), chunk.first, numbers)
    try:
        bodies = pack(dump.data_type, dump.version, records, job.packing, where)
    except RecordTooLarge as e:
        return Encoded(e.before, e.records_before, chunk.fraction, str(e))
    return Encoded(bodies, len(records), chunk.fraction, error)


class Workers(AsyncResource):
    """``count`` worker processes (one: a thread of this process); ``close`` is idempotent."""

    def __init__(self, count: int) -> None:
        if count < 1:
            raise ValueError(f"workers must be at least 1; got {count}")
        self.count = count
        self._pool: Executor | None = None
        self._closed = False

    async def open(self) -> None:
        if self.count == 1:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="encoder")
            return
        # spawn: a fork of a process running an event loop and threads is unsafe.
        self._pool = ProcessPoolExecutor(
            self.count, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker
        )
        for _ in range(self.count):  # start them now, while the first chunk is being cut
            self._pool.submit(_ready)

    def submit(self, job: Job) -> asyncio.Future[Encoded]:
        """Start encoding ``job``; the future holds its :class:`Encoded` or WorkerDied.

        Cancelling the future leaves the job alone: Python 3.11's pool crashes its own
        manager thread (and then hangs) when a job it fails as broken was cancelled.
        """
        if self._pool is None or self._closed:
            raise RuntimeError("Workers is not open")
        try:
            future: ConcurrentFuture[Encoded] = self._pool.submit(encode, job)
        except BrokenProcessPool as e:
            raise WorkerDied(_died(e)) from e
        return _bridge(future)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            # Not cancel_futures (see submit): at most a few chunks are left to finish.
            await asyncio.to_thread(pool.shutdown, wait=True)


def _bridge(source: ConcurrentFuture[Encoded]) -> asyncio.Future[Encoded]:
    """An asyncio future of ``source``'s outcome that never cancels ``source``."""
    loop = asyncio.get_running_loop()
    out: asyncio.Future[Encoded] = loop.create_future()

    def copy(done: ConcurrentFuture[Encoded]) -> None:
        if out.done():
            return
        if done.cancelled():
            out.cancel()
        elif isinstance(error := done.exception(), BrokenProcessPool):
            out.set_exception(WorkerDied(_died(error)))
        elif error is not None:
            out.set_exception(error)
        else:
            out.set_result(done.result())

    def settled(done: ConcurrentFuture[Encoded]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            loop.call_soon_threadsafe(copy, done)

    source.add_done_callback(settled)
    return out


def _died(error: BaseException) -> str:
    return f"an extractor worker process died (killed or out of memory?): {error}"


def _init_worker() -> None:
    """A worker leaves Ctrl-C to the extractor (which shuts the pool down) and exits when
    the extractor is gone (killed with SIGKILL, it never shuts the pool down)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    exit_with_parent()
    tune_gc()


def _ready() -> None:
    """Run once per worker at start: importing this module readies it."""
