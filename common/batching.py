"""BatchProcessor: takes deliveries' records, writes them in batches, settles the deliveries.

- A type is flushed when ``batch_size`` records are pending, or ``flush_interval`` seconds
  after its oldest pending record that can be written (:mod:`common.flush_timer`).
- ``max_pending`` bounds the records held (buffered + being written): :meth:`add` waits
  for room rather than letting memory grow.
- Writes run under the limits of :mod:`common.scheduler`; a write of batch messages of a
  serial type takes up to ``serial_batch_size`` records of what waited meanwhile.
- A record whose id is being written waits for that write (:mod:`common.buffer`).
- Each write is retried or split as :mod:`common.writing` says.
- A delivery is settled exactly once (:mod:`common.settling`), after every write holding
  one of its records has ended; one without records (a message that cannot be decoded)
  at once.
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Self

from common.buffer import TypeBuffer
from common.clock import SYSTEM_CLOCK, Clock
from common.flush_timer import FlushTimer
from common.metrics import Metrics
from common.records import DataType, Record
from common.scheduler import WriteScheduler
from common.settings import BatchConfig
from common.sink import Writer
from common.tickets import Delivery, Item, Rejection, Ticket
from common.writing import BatchWriter

__all__ = ["BatchProcessor", "Delivery", "Rejection"]


class _Room:
    """At most ``limit`` records held; one delivery larger than that is taken when empty."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self.held = 0
        self._changed = asyncio.Condition()

    async def wait(self, n: int) -> None:
        """Until ``n`` more records fit."""
        if not self._fits(n):
            async with self._changed:
                await self._changed.wait_for(lambda: self._fits(n))

    async def give_back(self, n: int) -> None:
        self.held -= n
        async with self._changed:
            self._changed.notify_all()

    def _fits(self, n: int) -> bool:
        return self.held + n <= self._limit or self.held == 0


class BatchProcessor:
    """Generic over an injected :class:`~common.sink.Writer`; an async context manager."""

    def __init__(
        self,
        *,
        writer: Writer,
        config: BatchConfig,
        metrics: Metrics,
        service: str,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._cfg = config
        self._metrics = metrics
        self._clock = clock
        self._buffers = {t: TypeBuffer() for t in DataType}
        self._room = _Room(config.max_pending)
        due = functools.partial(self._start_writes, full_only=False)
        self._timer = FlushTimer(clock, config.flush_interval, due)
        self._scheduler = WriteScheduler(
            limit=config.max_concurrent_flushes, serial_types=config.serial_types, service=service
        )
        self._writer = BatchWriter(writer, metrics=metrics, service=service, clock=clock)
        self._closed = False
        self._aborted = False
        self._close_done = asyncio.Event()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if et is None:
            await self.close()
        else:
            await self.abort()

    @property
    def failed(self) -> asyncio.Future[BaseException]:
        """Resolved with the first unexpected error of a write (the service must stop)."""
        return self._scheduler.failed

    @property
    def held(self) -> int:
        return self._room.held

    async def add(
        self,
        data_type: DataType,
        records: Sequence[Record],
        delivery: Delivery,
        *,
        rejections: Iterable[Rejection] = (),
        batch: bool = False,
    ) -> None:
        """Take one delivery's records; waits while ``max_pending`` records are held.

        ``batch`` marks a message of many records: a record rejected later is then
        dead-lettered on its own, not the whole message.
        """
        self._check_open()
        rejected = list(rejections)
        size = len(records) + len(rejected)
        ticket = Ticket(delivery, data_type, len(records), size, batch, rejected)
        if records:
            await self._room.wait(len(records))
            self._check_open()  # closed while waiting: the drain is over
            self._room.held += len(records)
        self._metrics.record_consumed(data_type, size)
        if not records:
            await self._resolve(ticket)
            return
        buffer, now = self._buffers[data_type], self._clock.now()
        buffer.extend(Item(record, ticket, now) for record in records)
        if len(buffer) >= self._cfg.batch_size:
            self._start_writes(data_type, full_only=True)
        elif not self._timer.armed(data_type):
            self._timer.watch(data_type, self._oldest_writable(data_type))

    async def drain(self, data_type: DataType) -> None:
        """Write everything pending of ``data_type`` and wait until all of it has settled."""
        buffer = self._buffers[data_type]
        while not self._aborted and (buffer or self._scheduler.running(data_type)):
            self._start_writes(data_type, full_only=False)
            await self._scheduler.wait(data_type)

    async def close(self) -> None:
        """Drain every type, then stop the timer. Idempotent: a later call waits for the first."""
        if self._closed:
            await self._close_done.wait()
            return
        self._closed = True
        try:
            await asyncio.gather(*(self.drain(t) for t in DataType))
        finally:
            self._timer.stop()
            self._close_done.set()

    async def abort(self) -> None:
        """Stop at once: cancel running writes and settle nothing (all will be redelivered)."""
        self._closed = self._aborted = True
        self._timer.stop()
        try:
            await self._scheduler.cancel()
        finally:
            self._close_done.set()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("BatchProcessor is closed")

    def _start_writes(self, data_type: DataType, *, full_only: bool) -> None:
        buffer, size = self._buffers[data_type], self._cfg.batch_size
        while len(buffer) >= (size if full_only else 1) and self._scheduler.may_start(data_type):
            # One-record messages keep writes of the batch size: then the consumer's own
            # loop is the busy part, and a larger write stalls it longer.
            cap = self._cfg.largest_write(data_type) if buffer.head.ticket.batch else size
            items = buffer.take(cap)
            if not items:
                break  # everything left waits for a running write of the same ids
            write = functools.partial(self._writer.write, data_type, items)
            ended = functools.partial(self._ended, data_type, items)
            self._scheduler.start(data_type, write, ended)
        self._timer.watch(data_type, self._oldest_writable(data_type))

    def _oldest_writable(self, data_type: DataType) -> float:
        """None of a type that may not start a write now: the running write's end does."""
        if not self._scheduler.may_start(data_type):
            return math.inf
        return self._buffers[data_type].oldest_writable()

    async def _ended(self, data_type: DataType, items: list[Item], succeeded: bool) -> None:
        try:
            if succeeded:
                for ticket in Ticket.completed_by(items):
                    await self._resolve(ticket)
        finally:
            self._buffers[data_type].release(items)
            # records held back for these ids may go now: by size, or by the timer
            self._start_writes(data_type, full_only=True)
            await self._room.give_back(len(items))

    async def _resolve(self, ticket: Ticket) -> None:
        """The one place a delivery is settled."""
        await ticket.delivery.settle(ticket.rejections)
        self._metrics.record_settled(ticket.data_type, ticket.size)
        if ticket.rejections:
            self._metrics.record_dead_letter(ticket.data_type, len(ticket.rejections))
