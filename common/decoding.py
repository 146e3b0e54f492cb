"""Decoding of message bodies off the event loop: on worker processes, or on a thread.

Decoding batch messages is most of a consumer's CPU. On a thread it shares the interpreter
lock with the event loop; on worker processes it runs on the other cores. What crosses
back is pickled, so a service may pass a *projection* (a module-level function, run in the
worker) that keeps only what it needs of each record. Bodies below ``inline_bytes``
(one-record messages) are decoded on the loop: shipping them costs more. A worker that
dies breaks the pool; the body is then decoded on a thread and the pool started anew, so a
crash never loses or dead-letters a message.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import structlog

from common.lifecycle import AsyncResource
from common.messages import DataMessage, InvalidMessage, Message, decode
from common.records import DataType, Record

log = structlog.get_logger(__name__)

# Decoded records are trees of dicts and lists without reference cycles, allocated by the
# hundred thousand a second; at the default threshold (700) the cyclic collector runs
# every few records and rescans everything still held in batches. Collections stay on,
# only much rarer (cycles from the asyncio and broker machinery are still freed).
_GC_THRESHOLDS = (50_000, 20, 100)
# Applied to every decoded record in the worker, before it is pickled back.
Projection = Callable[[DataType, Record], Record]
# A one-record message is ~3 KB; a batch message of 500 releases ~1.5 MB.
DEFAULT_INLINE_BYTES = 64 * 1024


def tune_gc() -> None:
    """Move what start-up allocated out of the collector's reach and collect less often.

    Run once by every consumer process and every decoding worker.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*_GC_THRESHOLDS)


def decode_projected(
    data_type: DataType, body: bytes, max_bytes: int, projection: Projection | None
) -> Message:
    """:func:`common.messages.decode`, then ``projection`` on each record (worker side)."""
    message = decode(data_type, body, max_bytes=max_bytes)
    if projection is None or not isinstance(message, DataMessage):
        return message
    records = [projection(data_type, r) for r in message.records]
    # Built directly: dataclasses.replace costs a one-record message more than projecting.
    return DataMessage(
        message.data_type, records, message.rejected, message.is_batch, message.base_version
    )


class Decoder(AsyncResource):
    """Decodes bodies for one service; an async context manager (``close`` is idempotent).

    ``workers``: decoding processes (0: a thread of this process). ``projection``: see the
    module doc; it must be a module-level function so that it can be pickled.
    """

    def __init__(
        self,
        *,
        workers: int,
        max_bytes: int,
        projection: Projection | None = None,
        inline_bytes: int = DEFAULT_INLINE_BYTES,
    ) -> None:
        if workers < 0:
            raise ValueError(f"workers must be 0 or more; got {workers}")
        self._workers = workers
        self._max_bytes = max_bytes
        self._projection = projection
        self._inline_bytes = inline_bytes
        self._pool: ProcessPoolExecutor | None = None
        self._closed = False

    async def open(self) -> None:
        self._start()

    async def close(self) -> None:
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)

    def start(self, data_type: DataType, body: bytes) -> asyncio.Future[Message]:
        """Begin decoding ``body`` now, so the workers decode ahead of the handling; the
        future holds the message or the ``InvalidMessage``."""
        if self._inline(body):
            future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
            try:
                future.set_result(self._call(data_type, body))
            except InvalidMessage as e:
                future.set_exception(e)
            return future
        return asyncio.ensure_future(self.decode(data_type, body))

    async def decode(self, data_type: DataType, body: bytes) -> Message:
        """Decode ``body`` received on ``data_type``'s queue; raises ``InvalidMessage``."""
        if self._inline(body):
            return self._call(data_type, body)
        pool = self._pool
        if pool is None:  # no workers, or closed
            return await asyncio.to_thread(self._call, data_type, body)
        loop = asyncio.get_running_loop()
        args = (data_type, body, self._max_bytes, self._projection)
        try:
            return await loop.run_in_executor(pool, decode_projected, *args)
        except BrokenProcessPool as e:
            if self._pool is pool:  # the first of the concurrent decodes to notice
                log.warning("decode worker died; restarting the pool", error=repr(e))
                self._pool = None
                await asyncio.to_thread(pool.shutdown, wait=False, cancel_futures=True)
                self._start()
            return await asyncio.to_thread(self._call, data_type, body)

    def _inline(self, body: bytes) -> bool:
        """Small bodies are decoded on the loop; oversized ones are refused unread there."""
        return len(body) < self._inline_bytes or len(body) > self._max_bytes

    def _call(self, data_type: DataType, body: bytes) -> Message:
        return decode_projected(data_type, body, self._max_bytes, self._projection)

    def _start(self) -> None:
        if self._workers and not self._closed and self._pool is None:
            # spawn: a fork of a process running an event loop and threads is unsafe.
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(
                self._workers, mp_context=context, initializer=_init_worker
            )
            for _ in range(self._workers):  # start them now, beside the service's start-up
                self._pool.submit(_ready)


def _init_worker() -> None:
    """A worker ignores the terminal's and the process group's stop signals (the consumer
    drains, then shuts its pool down itself) and exits when the consumer is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    exit_with_parent()
    tune_gc()


def exit_with_parent() -> None:
    """In a pool's worker process: exit as soon as the process that started it is gone.
    Killed with SIGKILL, a parent never shuts its pool down, and the pool's pipes never
    close under a worker, so the worker watches the parent itself."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()


def _exit_with(parent: multiprocessing.process.BaseProcess) -> None:
    parent.join()
    os._exit(0)


def _ready() -> None:
    """Run once per worker at start: importing this module readies the decoder."""
