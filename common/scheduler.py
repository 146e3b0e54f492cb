"""When writes run: at most ``max_concurrent_flushes`` at once, and one at a time for each
of the serial types.

A serial type's next write is not even formed while the one before it runs: when it ends,
the next takes everything that waited meanwhile. Their concurrent transactions would lock
each other's rows in opposite orders.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable

import structlog

from common.records import DataType

log = structlog.get_logger(__name__)


class WriteScheduler:
    """Runs write tasks under the two limits; ``failed`` holds the first unexpected error."""

    def __init__(self, *, limit: int, serial_types: frozenset[DataType], service: str) -> None:
        self._slots = asyncio.Semaphore(limit)
        self._serial = serial_types
        self._service = service
        self._forming: set[DataType] = set()  # serial types whose one write exists
        self._cancelled = False
        self._tasks: dict[DataType, set[asyncio.Task[None]]] = {t: set() for t in DataType}
        self.failed: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

    def may_start(self, data_type: DataType) -> bool:
        """Whether a new write of ``data_type`` may be formed now."""
        return not self._cancelled and data_type not in self._forming

    def running(self, data_type: DataType) -> bool:
        return bool(self._tasks[data_type])

    def start(
        self,
        data_type: DataType,
        write: Callable[[], Awaitable[None]],
        ended: Callable[[bool], Awaitable[None]],
    ) -> None:
        """Run ``write()`` when a slot is free, then ``ended(succeeded)``, even if it failed."""
        if data_type in self._serial:
            self._forming.add(data_type)
        task = asyncio.create_task(self._run(data_type, write, ended))
        self._tasks[data_type].add(task)
        task.add_done_callback(functools.partial(self._done, data_type))

    async def wait(self, data_type: DataType) -> None:
        """Until the writes of ``data_type`` running now have ended."""
        if self._tasks[data_type]:
            await asyncio.wait(set(self._tasks[data_type]))

    async def cancel(self) -> None:
        """Cancel every write; none starts after."""
        self._cancelled = True
        tasks = [t for tasks in self._tasks.values() for t in tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(
        self,
        data_type: DataType,
        write: Callable[[], Awaitable[None]],
        ended: Callable[[bool], Awaitable[None]],
    ) -> None:
        succeeded = False
        try:
            async with self._slots:
                await write()
            succeeded = True
        finally:
            self._forming.discard(data_type)
            await ended(succeeded)

    def _done(self, data_type: DataType, task: asyncio.Task[None]) -> None:
        self._tasks[data_type].discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and not self.failed.done():
            log.error("batch failed", service=self._service, error=repr(exc))
            self.failed.set_result(exc)
