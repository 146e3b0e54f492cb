"""BatchProcessor: buffers records per data type, writes them in batches, settles messages.

- A type is flushed when ``batch_size`` records are pending or ``flush_interval`` seconds
  have passed since its oldest pending record.
- ``max_pending`` bounds the records held (buffered + in flight): :meth:`add` waits for
  room rather than letting memory grow.
- At most ``max_concurrent_flushes`` writes run at once, and one at a time for each of
  ``serial_types``: the next write of such a type is formed only when the one before it
  has ended, from everything that waited meanwhile (up to ``serial_batch_size`` records
  of batch messages); a record whose id is already in
  a running (or forming) write of its type waits for that write, so two versions of one
  record never race, never share a batch, and the later one is always written last.
- A delivery (one AMQP message, one or many records) is settled exactly once, by
  :meth:`_Ticket.resolve`, after every write holding one of its records has committed.
- Transient write failures are retried with backoff for as long as it takes; a batch the
  database rejects is split in halves until the bad records are isolated and
  dead-lettered, and the rest commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Protocol, Self

import orjson
import structlog

from common.metrics import Metrics
from common.records import DataType, Record
from common.retry import MAX_BACKOFF, backoff_delay
from common.settings import BatchConfig
from common.sink import BatchRejected, TransientWriteError, Writer, WriteResult

log = structlog.get_logger(__name__)

_MAX_BACKOFF = MAX_BACKOFF


@dataclass(frozen=True, slots=True)
class Rejection:
    """A record that will not be stored: why, and the record's own wire body if it has one."""

    reason: str
    body: bytes | None = None


class Delivery(Protocol):
    """One received message. :meth:`settle` is called exactly once per delivery."""

    async def settle(self, rejections: Sequence[Rejection]) -> None:
        """Ack; first dead-letter each rejection (all of the message when ``body`` is None)."""
        ...


@dataclass(slots=True)
class _Ticket:
    delivery: Delivery
    data_type: DataType
    remaining: int
    size: int
    batch: bool
    rejections: list[Rejection] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Item:
    record: Record
    ticket: _Ticket
    added: float  # time.monotonic() when it arrived


@dataclass(slots=True)
class _TypeState:
    pending: list[_Item] = field(default_factory=list)
    # Arrival of the oldest pending record that can be written now (its id is not in a
    # running write); ``inf`` when there is none, so the timer does not wait on it.
    oldest: float = math.inf
    inflight_ids: set[str] = field(default_factory=set)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    serial_busy: bool = False  # a serial type's one write is formed or running


class BatchProcessor:
    """Generic over an injected :class:`~common.sink.Writer`; an async context manager."""

    def __init__(
        self, *, writer: Writer, config: BatchConfig, metrics: Metrics, service: str
    ) -> None:
        self._writer = writer
        self._cfg = config
        self._metrics = metrics
        self._service = service
        self._types = {t: _TypeState() for t in DataType}
        self._held = 0  # records buffered or in flight
        self._room = asyncio.Condition()
        self._flush_slots = asyncio.Semaphore(config.max_concurrent_flushes)
        self._type_slots = {t: asyncio.Semaphore(1) for t in config.serial_types}
        self._wake = asyncio.Event()
        self._timer: asyncio.Task[None] | None = None
        self._closed = False
        self._close_done = asyncio.Event()
        self.failed: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

    async def __aenter__(self) -> Self:
        self._timer = asyncio.create_task(self._timer_loop(), name="batch-timer")
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if et is None:
            await self.close()
        else:
            await self.abort()

    async def abort(self) -> None:
        """Stop at once: cancel running writes and settle nothing (all will be redelivered)."""
        self._closed = True
        tasks = [t for s in self._types.values() for t in s.tasks]
        if self._timer is not None:
            tasks.append(self._timer)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    @property
    def held(self) -> int:
        return self._held

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
        if self._closed:
            raise RuntimeError("BatchProcessor is closed")
        rejected = list(rejections)
        size = len(records) + len(rejected)
        ticket = _Ticket(delivery, data_type, len(records), size, batch, rejected)
        if records:
            await self._wait_for_room(len(records))
            if self._closed:  # closed while waiting: the drain is over, nothing may be added
                raise RuntimeError("BatchProcessor is closed")
        self._metrics.record_consumed(data_type, size)
        if not records:
            await self._resolve(ticket)
            return
        state = self._types[data_type]
        now = time.monotonic()
        state.pending.extend(_Item(record, ticket, now) for record in records)
        self._held += len(records)
        if len(state.pending) >= self._cfg.batch_size:
            self._start_flushes(data_type, full_only=True)
        elif math.isinf(state.oldest):
            self._reset_oldest(state)

    async def drain(self, data_type: DataType) -> None:
        """Write everything pending of ``data_type`` and wait until all of it has settled."""
        state = self._types[data_type]
        while state.pending or state.tasks:
            self._start_flushes(data_type, full_only=False)
            if state.tasks:
                await asyncio.wait(set(state.tasks))

    async def close(self) -> None:
        """Drain every type, then stop the timer. Idempotent: a later call waits for the first."""
        if self._closed:
            await self._close_done.wait()
            return
        self._closed = True
        try:
            await asyncio.gather(*(self.drain(t) for t in DataType))
        finally:
            if self._timer is not None:
                self._timer.cancel()
                await asyncio.gather(self._timer, return_exceptions=True)
            self._close_done.set()

    # ------------------------------------------------------------------ internals

    async def _wait_for_room(self, n: int) -> None:
        limit = self._cfg.max_pending
        if self._held + n <= limit or self._held == 0:
            return
        async with self._room:
            await self._room.wait_for(lambda: self._held + n <= limit or self._held == 0)

    async def _release_room(self, n: int) -> None:
        self._held -= n
        async with self._room:
            self._room.notify_all()

    def _start_flushes(self, data_type: DataType, *, full_only: bool) -> None:
        state = self._types[data_type]
        size = self._cfg.batch_size
        serial = data_type in self._type_slots
        while len(state.pending) >= (size if full_only else 1):
            if state.serial_busy:
                break  # the running write forms the next one when it ends
            # One-record messages keep writes of the batch size: then the consumer's own
            # loop is what is busy, and a larger write stalls it longer (measured: labels
            # 0.43-0.52 of the ceiling -> 0.39).
            batched = state.pending[0].ticket.batch
            cap = self._cfg.largest_write(data_type) if batched else size
            batch: list[_Item] = []
            kept: list[_Item] = []
            for item in state.pending:
                if len(batch) < cap and item.record.id not in state.inflight_ids:
                    batch.append(item)
                    state.inflight_ids.add(item.record.id)
                else:
                    kept.append(item)
            if not batch:
                break  # everything left waits for a running write of the same ids
            state.pending = kept
            state.serial_busy = serial
            task = asyncio.create_task(self._run_batch(data_type, batch))
            state.tasks.add(task)
            task.add_done_callback(functools.partial(self._batch_done, state=state))
        self._reset_oldest(state)

    def _reset_oldest(self, state: _TypeState) -> None:
        """Point the timer at the oldest pending record that can be written now (none of a
        serial type while its write runs: that write's end starts the next)."""
        if state.serial_busy:
            oldest = math.inf
        else:
            oldest = next(
                (i.added for i in state.pending if i.record.id not in state.inflight_ids),
                math.inf,
            )
        if oldest != state.oldest:
            state.oldest = oldest
            self._wake.set()

    def _batch_done(self, task: asyncio.Task[None], *, state: _TypeState) -> None:
        state.tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and not self.failed.done():
            log.error("batch failed", service=self._service, error=repr(exc))
            self.failed.set_result(exc)

    async def _timer_loop(self) -> None:
        interval = self._cfg.flush_interval
        while True:
            now = time.monotonic()
            due = [s.oldest + interval for s in self._types.values() if s.pending]
            due = [d for d in due if math.isfinite(d)]
            self._wake.clear()
            if not due:
                await self._wake.wait()
                continue
            wait = min(due) - now
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=wait)
                continue
            for data_type, state in self._types.items():
                if state.pending and state.oldest + interval <= now:
                    self._start_flushes(data_type, full_only=False)

    async def _run_batch(self, data_type: DataType, items: list[_Item]) -> None:
        state = self._types[data_type]
        try:
            async with self._type_slot(data_type), self._flush_slots:
                await self._write_split(data_type, items)
            for item in items:
                item.ticket.remaining -= 1
                if item.ticket.remaining == 0:
                    await self._resolve(item.ticket)
        finally:
            state.serial_busy = False  # set only for a serial type, whose one write this was
            state.inflight_ids.difference_update(i.record.id for i in items)
            # records held back for these ids may go now: by size, or by the timer
            self._start_flushes(data_type, full_only=True)
            await self._release_room(len(items))

    def _type_slot(self, data_type: DataType) -> contextlib.AbstractAsyncContextManager[object]:
        """The type's own one-at-a-time slot, taken before an overall one; or nothing."""
        slot = self._type_slots.get(data_type)
        return slot if slot is not None else contextlib.nullcontext()

    async def _write_split(self, data_type: DataType, items: list[_Item]) -> None:
        try:
            await self._write_with_retry(data_type, items)
        except BatchRejected as e:
            if len(items) == 1:
                item = items[0]
                log.warning(
                    "record rejected",
                    service=self._service,
                    data_type=data_type.value,
                    record_id=item.record.id,
                    reason=str(e),
                )
                body = _record_body(item.record) if item.ticket.batch else None
                item.ticket.rejections.append(Rejection(str(e), body))
                return
            log.info("batch split", data_type=data_type.value, size=len(items), reason=str(e))
            half = len(items) // 2
            await self._write_split(data_type, items[:half])
            await self._write_split(data_type, items[half:])

    async def _write_with_retry(self, data_type: DataType, items: list[_Item]) -> None:
        records = [i.record for i in items]
        attempt = 0
        while True:
            started = time.perf_counter()
            try:
                result = await self._writer.write(data_type, records)
            except TransientWriteError as e:
                attempt += 1
                delay = backoff_delay(attempt, cap=_MAX_BACKOFF)
                self._metrics.record_retry(data_type)
                log.warning(
                    "write retry",
                    service=self._service,
                    data_type=data_type.value,
                    attempt=attempt,
                    delay_s=round(delay, 2),
                    error=str(e),
                )
                await asyncio.sleep(delay)
                continue
            self._log_batch(data_type, len(records), result, started)
            return

    def _log_batch(
        self, data_type: DataType, size: int, result: WriteResult, started: float
    ) -> None:
        seconds = time.perf_counter() - started
        written, unchanged = result.written, result.unchanged
        self._metrics.record_batch(
            data_type, written=written, unchanged=unchanged, seconds=seconds, added=result.added
        )
        stats = self._metrics.types[data_type]
        log.info(
            "Batch processed",
            service=self._service,
            data_type=data_type.value,
            batch_size=size,
            duration_ms=round(seconds * 1000, 1),
            records_per_sec=round(size / seconds, 1) if seconds > 0 else None,
            written=written,
            unchanged=unchanged,
            total=stats.written + stats.unchanged,
            overall_records_per_sec=round(stats.rate(), 1),
        )

    async def _resolve(self, ticket: _Ticket) -> None:
        """The one place a delivery is settled."""
        await ticket.delivery.settle(ticket.rejections)
        self._metrics.record_settled(ticket.data_type, ticket.size)
        n_rejected = len(ticket.rejections)
        if n_rejected:
            self._metrics.record_dead_letter(ticket.data_type, n_rejected)


def _record_body(record: Record) -> bytes:
    """A record's own wire body (data message shape), for dead-lettering it alone.

    Built from the canonical JSON when the record has it: a record decoded on a worker
    process may carry only part of ``data`` (see :mod:`common.decoding`).
    """
    data = orjson.loads(record.encoded) if record.encoded is not None else record.data
    return orjson.dumps({**data, "sha256": record.sha256})
