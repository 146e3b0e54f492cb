"""A consumer's view of its load while it runs: queue depths from the broker and a
``progress`` log line per active type every ``PROGRESS_INTERVAL`` seconds.

The figures come from :mod:`common.progress` and are kept on each type's
:class:`~common.metrics.TypeStats`, where ``/health`` and ``/metrics`` read them too.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping

import structlog
from aio_pika.abc import AbstractQueue

from common.amqp import SETTLE_ERRORS
from common.lifecycle import AsyncResource
from common.metrics import Metrics
from common.progress import Progress
from common.records import DataType

log = structlog.get_logger(__name__)

Clock = Callable[[], float]


class QueueDepths:
    """Reads each queue's ready messages from the broker, at most once a second."""

    def __init__(self, metrics: Metrics, *, clock: Clock = time.monotonic) -> None:
        self._metrics = metrics
        self._clock = clock
        self._checked: float | None = None
        self.queues: Mapping[DataType, AbstractQueue] = {}

    async def refresh(self) -> None:
        now = self._clock()
        if self._checked is not None and now - self._checked < 1.0:
            return
        self._checked = now
        for data_type, queue in self.queues.items():
            try:
                # Declaring the queue again with its own arguments answers with its depth. A
                # passive declare_queue() would not: on a robust channel it returns the queue
                # object it already holds, without asking the broker.
                declared = await queue.declare(timeout=2)
            except SETTLE_ERRORS as e:
                log.debug("queue depth unavailable", queue=queue.name, error=repr(e))
                continue
            self._metrics.types[data_type].ready = declared.message_count or 0


class ProgressLog(AsyncResource):
    """Every ``interval`` seconds: fresh depths, new figures, one line per active type."""

    def __init__(
        self,
        *,
        service: str,
        metrics: Metrics,
        depths: QueueDepths,
        interval: float,
        clock: Clock = time.monotonic,
    ) -> None:
        self._service = service
        self._metrics = metrics
        self._depths = depths
        self._interval = interval
        self._progress = Progress(clock)
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"progress-{self._service}")

    async def close(self) -> None:
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def tick(self) -> None:
        await self._depths.refresh()
        for data_type, stats in self._metrics.types.items():
            if stats.messages == 0 and not stats.ready:
                continue  # nothing of this type has come or waits: no figures to show
            figures = self._progress.sample(data_type, stats.reading())
            stats.progress = figures
            if figures.active:
                log.info(
                    "progress",
                    service=self._service,
                    data_type=data_type.value,
                    pending=stats.pending,
                    **figures.as_dict(),
                )

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.tick()
