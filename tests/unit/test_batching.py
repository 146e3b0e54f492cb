"""Unit tests of :class:`common.batching.BatchProcessor`'s batching rules.

A fake writer and a fake delivery stand in for the database and the broker: these tests
check *when* records are written and *when* messages are settled, not persistence. Time
is a :class:`~tests.support.ManualClock`: it moves only when a test advances it, so every
interval is checked exactly and nothing waits on the wall clock.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import orjson
import pytest

from common.batching import BatchProcessor, Rejection
from common.messages import ExtractionComplete, FileComplete
from common.metrics import Metrics
from common.records import DataType, Record
from common.settings import BatchConfig
from common.sink import BatchRejected, TransientWriteError, WriteResult
from common.waiting import RETRY
from tests.support import ManualClock, run_loop, until

A = DataType.ARTISTS
L = DataType.LABELS


# ---------------------------------------------------------------------------- helpers


def rec(rid: str | int, version: str = "v1", **data: object) -> Record:
    rid = str(rid)
    return Record(id=rid, sha256=f"{rid}-{version}", data={"id": rid, **data})


class FakeWriter:
    """Records every write attempt; can hold writes open, fail transiently or fatally.

    - ``gate``: when set to an unset event, every write waits for it;
    - ``hold``: sha256 -> event; a write holding that record version waits for it;
    - ``transient``: how many of the next attempts raise :class:`TransientWriteError`;
    - ``fatal``: raised by every attempt while set;
    - a record whose data has ``"bad": True`` makes the whole write raise ``BatchRejected``;
      ``"unchanged": True`` counts the record as unchanged rather than written.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[DataType, list[Record]]] = []
        self.committed: list[tuple[DataType, list[Record]]] = []
        self.events: list[tuple[str, str]] = []  # ("start" | "commit", sha256)
        self.gate: asyncio.Event | None = None
        self.hold: dict[str, asyncio.Event] = {}
        self.transient = 0
        self.fatal: BaseException | None = None
        self.active = 0
        self.max_active = 0
        self.duplicate_ids_in_a_write = False
        self.on_write: Callable[[], None] | None = None

    @property
    def committed_records(self) -> list[Record]:
        return [r for _, records in self.committed for r in records]

    def committed_ids(self, data_type: DataType = A) -> list[str]:
        return [r.id for t, records in self.committed if t is data_type for r in records]

    def sizes(self) -> list[int]:
        return [len(records) for _, records in self.calls]

    async def write(self, data_type: DataType, records: Sequence[Record]) -> WriteResult:
        batch = list(records)
        self.calls.append((data_type, batch))
        if len({r.id for r in batch}) != len(batch):
            self.duplicate_ids_in_a_write = True
        if self.on_write is not None:
            self.on_write()
        self.events.extend(("start", r.sha256) for r in batch)
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            if self.gate is not None:
                await self.gate.wait()
            for r in batch:
                if r.sha256 in self.hold:
                    await self.hold[r.sha256].wait()
            if self.transient > 0:
                self.transient -= 1
                raise TransientWriteError("database restarting")
            if self.fatal is not None:
                raise self.fatal
            bad = [r.id for r in batch if r.data.get("bad")]
            if bad:
                raise BatchRejected(f"bad data in {bad[0]}")
            self.committed.append((data_type, batch))
            self.events.extend(("commit", r.sha256) for r in batch)
            unchanged = sum(1 for r in batch if r.data.get("unchanged"))
            return WriteResult(written=len(batch) - unchanged, unchanged=unchanged)
        finally:
            self.active -= 1

    async def file_complete(self, message: FileComplete) -> None:
        raise AssertionError("not used by BatchProcessor")

    async def extraction_complete(
        self, data_type: DataType, message: ExtractionComplete, *, dead_letters: int
    ) -> int:
        raise AssertionError("not used by BatchProcessor")


class FakeDelivery:
    """Records each settle call: its rejections, and what was committed by then."""

    def __init__(self, name: str, writer: FakeWriter) -> None:
        self.name = name
        self.writer = writer
        self.settles: list[list[Rejection]] = []
        self.committed_at_settle: list[Record] = []

    @property
    def settled(self) -> bool:
        return bool(self.settles)

    async def settle(self, rejections: Sequence[Rejection]) -> None:
        self.settles.append(list(rejections))
        self.committed_at_settle = list(self.writer.committed_records)


def deliveries(writer: FakeWriter, n: int, prefix: str = "d") -> list[FakeDelivery]:
    return [FakeDelivery(f"{prefix}{i}", writer) for i in range(n)]


def config(
    *,
    batch_size: int = 10,
    flush_interval: float = 0.05,
    max_pending: int = 1000,
    max_concurrent_flushes: int = 2,
    serial_types: frozenset[DataType] = frozenset(),
    serial_batch_size: int = 0,
) -> BatchConfig:
    return BatchConfig(
        batch_size=batch_size,
        flush_interval=flush_interval,
        max_pending=max_pending,
        max_concurrent_flushes=max_concurrent_flushes,
        serial_types=serial_types,
        serial_batch_size=serial_batch_size,
    )


@pytest.fixture
def writer() -> FakeWriter:
    return FakeWriter()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics("test")


Make = Callable[[BatchConfig], AbstractAsyncContextManager[BatchProcessor]]


@pytest.fixture
def make(writer: FakeWriter, clock: ManualClock, metrics: Metrics) -> Make:
    """Builds the processor under test on the test's writer, clock and metrics."""

    @asynccontextmanager
    async def processor(cfg: BatchConfig) -> AsyncIterator[BatchProcessor]:
        proc = BatchProcessor(
            writer=writer, config=cfg, metrics=metrics, service="test", clock=clock
        )
        async with proc:
            yield proc

    return processor


def body(record: Record) -> bytes:
    return orjson.dumps({**record.data, "sha256": record.sha256})


# ---------------------------------------------------------------------------- flushing


async def test_flush_by_size_writes_exactly_batch_size(
    writer: FakeWriter, clock: ManualClock, make: Make
) -> None:
    async with make(config(batch_size=5, flush_interval=30)) as proc:
        ds = deliveries(writer, 12)
        for i, d in enumerate(ds):
            await proc.add(A, [rec(i)], d)
        await run_loop()
        assert writer.sizes() == [5, 5]
        assert writer.committed_ids() == [str(i) for i in range(10)]
        assert all(d.settled for d in ds[:10])
        assert not any(d.settled for d in ds[10:])  # the last two wait for the timer
        await clock.advance(29.5)
        assert writer.sizes() == [5, 5]
        await clock.advance(0.5)
        assert writer.sizes() == [5, 5, 2]
        assert all(d.settles == [[]] for d in ds)
        assert not proc.failed.done()


async def test_flush_by_size_splits_one_large_message(writer: FakeWriter, make: Make) -> None:
    async with make(config(batch_size=4, flush_interval=30)) as proc:
        d = FakeDelivery("big", writer)
        await proc.add(A, [rec(i) for i in range(10)], d, batch=True)
        await run_loop()
        assert writer.sizes() == [4, 4]
        assert len(writer.committed) == 2
        assert not d.settled  # two records still pending
        await proc.drain(A)
        assert writer.sizes() == [4, 4, 2]
        assert d.settles == [[]]
        assert len(d.committed_at_settle) == 10


async def test_flush_by_time_writes_a_partial_batch(
    writer: FakeWriter, clock: ManualClock, make: Make
) -> None:
    async with make(config(batch_size=100, flush_interval=1.0)) as proc:
        ds = deliveries(writer, 3)
        for i, d in enumerate(ds):
            await proc.add(A, [rec(i)], d)
        await clock.advance(0.875)
        assert writer.calls == []
        await clock.advance(0.125)
        assert writer.sizes() == [3]
        assert all(d.settled for d in ds)
        # a later record starts a new interval of its own
        later = FakeDelivery("later", writer)
        await proc.add(A, [rec(99)], later)
        await clock.advance(0.875)
        assert not later.settled
        await clock.advance(0.125)
        assert later.settled
        assert writer.sizes() == [3, 1]


async def test_flush_interval_counts_from_oldest_pending_record(
    writer: FakeWriter, clock: ManualClock, make: Make
) -> None:
    async with make(config(batch_size=100, flush_interval=1.0)) as proc:
        first, second = FakeDelivery("first", writer), FakeDelivery("second", writer)
        await proc.add(A, [rec(1)], first)
        await clock.advance(0.5)
        await proc.add(A, [rec(2)], second)
        await clock.advance(0.25)
        assert writer.calls == []
        await clock.advance(0.25)  # the first record's deadline, not the second's
        assert writer.sizes() == [2]
        assert first.settled
        assert second.settled


async def test_each_type_is_batched_separately(writer: FakeWriter, make: Make) -> None:
    async with make(config(batch_size=2, flush_interval=30)) as proc:
        await proc.add(A, [rec(1)], FakeDelivery("a1", writer))
        await proc.add(L, [rec(1)], FakeDelivery("l1", writer))
        await run_loop()
        assert writer.calls == []
        await proc.add(L, [rec(2)], FakeDelivery("l2", writer))
        await run_loop()
        assert [t for t, _ in writer.calls] == [L]
        assert writer.committed_ids(L) == ["1", "2"]
        await proc.drain(A)
        assert writer.committed_ids(A) == ["1"]


# ---------------------------------------------------------------------------- settling


async def test_message_spanning_two_writes_settles_after_the_later_one(
    writer: FakeWriter, clock: ManualClock, make: Make
) -> None:
    # The first write (holding one record of "span") is held open; the second commits.
    writer.hold["a-v1"] = asyncio.Event()
    async with make(config(batch_size=3, flush_interval=1.0)) as proc:
        before = FakeDelivery("before", writer)
        span = FakeDelivery("span", writer)
        await proc.add(A, [rec("a"), rec("b")], before, batch=True)
        await proc.add(A, [rec("c"), rec("d")], span, batch=True)
        await clock.advance(1.0)  # write 1 = a, b, c (size); write 2 = d (timer)
        assert [[r.id for r in b] for _, b in writer.calls] == [["a", "b", "c"], ["d"]]
        assert [[r.id for r in b] for _, b in writer.committed] == [["d"]]
        assert not span.settled
        assert not before.settled
        writer.hold["a-v1"].set()
        await run_loop()
        assert span.settles == [[]]
        assert before.settles == [[]]
        assert {r.id for r in span.committed_at_settle} == {"a", "b", "c", "d"}


async def test_message_spanning_two_writes_waits_for_the_second(
    writer: FakeWriter, clock: ManualClock, make: Make
) -> None:
    # Now the first write commits and the second is held open.
    writer.hold["d-v1"] = asyncio.Event()
    async with make(config(batch_size=3, flush_interval=1.0)) as proc:
        before = FakeDelivery("before", writer)
        span = FakeDelivery("span", writer)
        await proc.add(A, [rec("a"), rec("b")], before, batch=True)
        await proc.add(A, [rec("c"), rec("d")], span, batch=True)
        await clock.advance(1.0)
        assert before.settles == [[]]
        assert len(writer.calls) == 2
        assert not span.settled
        writer.hold["d-v1"].set()
        await run_loop()
        assert span.settles == [[]]
        assert {r.id for r in span.committed_at_settle} == {"a", "b", "c", "d"}


async def test_every_delivery_settled_exactly_once(
    writer: FakeWriter, clock: ManualClock, make: Make
) -> None:
    cfg = config(batch_size=7, flush_interval=0.25, max_pending=50, max_concurrent_flushes=3)
    async with make(cfg) as proc:
        ds = deliveries(writer, 60)
        n = 0
        for i, d in enumerate(ds):
            size = 1 + i % 4
            await proc.add(A if i % 3 else L, [rec(n + k) for k in range(size)], d, batch=True)
            n += size
        await clock.advance(0.25)
        assert all(d.settled for d in ds)
    assert all(d.settles == [[]] for d in ds)
    assert len(writer.committed_records) == n
    assert not writer.duplicate_ids_in_a_write


async def test_delivery_without_records_settles_at_once(
    writer: FakeWriter, metrics: Metrics, make: Make
) -> None:
    async with make(config(flush_interval=30)) as proc:
        d = FakeDelivery("invalid", writer)
        rejection = Rejection("not JSON", None)
        await proc.add(A, [], d, rejections=[rejection])
        assert d.settles == [[rejection]]  # before add() returned
        empty = FakeDelivery("empty", writer)
        await proc.add(A, [], empty)
        assert empty.settles == [[]]
    assert writer.calls == []
    snap = metrics.snapshot()["artists"]
    assert snap["consumed"] == 1
    assert snap["dead_lettered"] == 1
    assert snap["pending"] == 0


async def test_upfront_rejections_are_settled_with_the_written_records(
    writer: FakeWriter, clock: ManualClock, metrics: Metrics, make: Make
) -> None:
    async with make(config(batch_size=100, flush_interval=1.0)) as proc:
        d = FakeDelivery("mixed", writer)
        invalid = Rejection("no id", b'{"name": "x"}')
        await proc.add(A, [rec(1), rec(2)], d, rejections=[invalid], batch=True)
        await run_loop()
        assert not d.settled
        await clock.advance(1.0)
        assert d.settles == [[invalid]]
        assert len(d.committed_at_settle) == 2
    snap = metrics.snapshot()["artists"]
    assert (snap["consumed"], snap["written"], snap["dead_lettered"], snap["pending"]) == (
        3,
        2,
        1,
        0,
    )


# ---------------------------------------------------------------------------- bounds


async def test_max_pending_blocks_add_until_a_write_finishes(
    writer: FakeWriter, make: Make
) -> None:
    limit = 4
    cfg = config(batch_size=2, flush_interval=30, max_pending=limit, max_concurrent_flushes=1)
    writer.gate = asyncio.Event()
    observed: list[int] = []
    async with make(cfg) as proc:
        writer.on_write = lambda: observed.append(proc.held)
        added: list[FakeDelivery] = []

        async def produce() -> None:
            for i in range(12):
                d = FakeDelivery(f"d{i}", writer)
                await proc.add(A, [rec(i)], d)
                observed.append(proc.held)
                added.append(d)

        producer = asyncio.create_task(produce())
        await run_loop()
        assert len(added) == limit
        assert proc.held == limit
        assert not producer.done()
        writer.gate.set()
        await until(producer.done)
        await run_loop()
        assert all(d.settled for d in added)
    assert len(added) == 12
    assert max(observed) <= limit
    assert proc.held == 0


async def test_max_pending_admits_an_oversized_message_when_empty(
    writer: FakeWriter, clock: ManualClock, make: Make
) -> None:
    async with make(config(batch_size=2, flush_interval=1.0, max_pending=3)) as proc:
        d = FakeDelivery("huge", writer)
        adding = asyncio.create_task(proc.add(A, [rec(i) for i in range(5)], d, batch=True))
        await until(adding.done)
        await clock.advance(1.0)
        assert d.settled
        assert proc.held == 0


async def test_held_never_exceeds_max_pending_with_many_producers(
    writer: FakeWriter, clock: ManualClock, make: Make
) -> None:
    limit = 10
    cfg = config(batch_size=3, flush_interval=0.25, max_pending=limit, max_concurrent_flushes=2)
    observed: list[int] = []
    async with make(cfg) as proc:
        writer.on_write = lambda: observed.append(proc.held)
        ds: list[FakeDelivery] = []

        async def produce(start: int) -> None:
            for i in range(start, start + 30, 2):
                d = FakeDelivery(f"d{i}", writer)
                ds.append(d)
                await proc.add(A, [rec(i), rec(i + 1)], d, batch=True)
                observed.append(proc.held)

        producers = asyncio.gather(*(produce(k * 100) for k in range(4)))
        await until(producers.done)
        await clock.advance(0.25)
        assert len(ds) == 60
        assert all(d.settled for d in ds)
    assert max(observed) <= limit
    assert len(writer.committed_records) == 120


async def test_at_most_max_concurrent_flushes_writes_run(writer: FakeWriter, make: Make) -> None:
    cfg = config(batch_size=1, flush_interval=30, max_concurrent_flushes=3)
    writer.gate = asyncio.Event()
    async with make(cfg) as proc:
        ds = deliveries(writer, 10)
        for i, d in enumerate(ds):
            await proc.add(A if i % 2 else L, [rec(i)], d)
        await run_loop()
        assert writer.active == 3
        assert len(writer.calls) == 3
        writer.gate.set()
        await run_loop()
        assert all(d.settled for d in ds)
    assert writer.max_active == 3
    assert len(writer.committed) == 10


async def test_a_serial_type_writes_one_batch_at_a_time_without_holding_others_back(
    writer: FakeWriter, make: Make
) -> None:
    cfg = config(
        batch_size=1, flush_interval=30, max_concurrent_flushes=3, serial_types=frozenset({A})
    )
    writer.gate = asyncio.Event()

    def started(data_type: DataType) -> int:
        return sum(1 for t, _ in writer.calls if t is data_type)

    async with make(cfg) as proc:
        ds = deliveries(writer, 12)
        for i, d in enumerate(ds):
            await proc.add(A if i < 6 else L, [rec(i)], d)
        await run_loop()
        assert (writer.active, started(A), started(L)) == (3, 1, 2)
        writer.gate.set()
        await run_loop()
        assert all(d.settled for d in ds)
    assert len(writer.committed) == 12


@pytest.mark.parametrize(
    ("batch", "sizes"),
    [(True, [5, 12, 12, 11]), (False, [5] * 8)],
    ids=["batch-messages", "one-record-messages"],
)
async def test_a_serial_write_takes_what_waited_meanwhile_of_batch_messages(
    writer: FakeWriter, make: Make, batch: bool, sizes: list[int]
) -> None:
    """Up to the serial batch size of batch-message records; one-record messages keep
    writes of the batch size (there the consumer's loop is the busy part)."""
    cfg = config(batch_size=5, flush_interval=30, serial_types=frozenset({A}), serial_batch_size=12)
    writer.gate = asyncio.Event()
    async with make(cfg) as proc:
        ds = deliveries(writer, 40)
        for i, d in enumerate(ds[:5]):
            await proc.add(A, [rec(i)], d, batch=batch)
        await run_loop()
        assert writer.active == 1
        for i, d in enumerate(ds[5:], start=5):  # 35 wait while the first write runs
            await proc.add(A, [rec(i)], d, batch=batch)
        await run_loop()
        assert len(writer.calls) == 1  # nothing formed behind it
        writer.gate.set()
        await run_loop()
        assert all(d.settled for d in ds)
    assert writer.sizes() == sizes
    assert writer.committed_ids() == [str(i) for i in range(40)]
    assert writer.max_active == 1


async def test_a_serial_remainder_below_the_batch_size_waits_for_the_timer(
    writer: FakeWriter, clock: ManualClock, make: Make
) -> None:
    cfg = config(
        batch_size=5, flush_interval=1.0, serial_types=frozenset({A}), serial_batch_size=20
    )
    writer.gate = asyncio.Event()
    async with make(cfg) as proc:
        for i, d in enumerate(deliveries(writer, 5)):
            await proc.add(A, [rec(i)], d, batch=True)
        late = deliveries(writer, 3, "late")
        for i, d in enumerate(late, start=5):
            await proc.add(A, [rec(i)], d, batch=True)
        await clock.advance(0.5)
        assert writer.sizes() == [5]  # nothing formed behind the running write
        writer.gate.set()
        await run_loop()
        assert writer.sizes() == [5]  # three are below the batch size: the timer writes them
        await clock.advance(0.5)  # one interval after they arrived
        assert writer.sizes() == [5, 3]
        assert all(d.settled for d in late)


async def test_types_that_are_not_serial_keep_batches_of_the_batch_size(
    writer: FakeWriter, make: Make
) -> None:
    async with make(config(batch_size=5, flush_interval=30, serial_batch_size=50)) as proc:
        ds = deliveries(writer, 20)
        for i, d in enumerate(ds):
            await proc.add(A, [rec(i)], d, batch=True)
        await run_loop()
        assert all(d.settled for d in ds)
    assert writer.sizes() == [5, 5, 5, 5]


# ---------------------------------------------------------------------------- failures


async def test_transient_errors_are_retried_without_dead_lettering(
    writer: FakeWriter, clock: ManualClock, metrics: Metrics, make: Make
) -> None:
    writer.transient = 10**9  # down until further notice
    async with make(config(batch_size=2, flush_interval=30)) as proc:
        d1, d2 = FakeDelivery("d1", writer), FakeDelivery("d2", writer)
        await proc.add(A, [rec(1)], d1)
        await proc.add(A, [rec(2)], d2)
        for _ in range(4):
            await clock.advance(RETRY.cap)  # the longest wait between two attempts
        assert len(writer.calls) >= 5
        assert not d1.settled
        assert not d2.settled
        assert writer.committed == []
        writer.transient = 0  # back up
        await clock.advance(RETRY.cap)
        assert d1.settles == [[]]
        assert d2.settles == [[]]
    assert all(len(b) == 2 for _, b in writer.calls)  # retried whole, never split
    retries = metrics.registry.get_sample_value("write_retries_total", {"data_type": "artists"})
    assert retries == len(writer.calls) - 1
    snap = metrics.snapshot()["artists"]
    assert (snap["dead_lettered"], snap["written"], snap["pending"]) == (0, 2, 0)
    assert not proc.failed.done()


async def test_a_few_transient_errors_then_success(
    writer: FakeWriter, clock: ManualClock, metrics: Metrics, make: Make
) -> None:
    writer.transient = 3
    async with make(config(batch_size=1, flush_interval=30)) as proc:
        d = FakeDelivery("d", writer)
        await proc.add(A, [rec(1)], d)
        await run_loop()
        assert len(writer.calls) == 1  # the retry waits for its backoff
        await clock.advance(3 * RETRY.cap)
        assert d.settles == [[]]
    assert len(writer.calls) == 4
    assert metrics.registry.get_sample_value("write_retries_total", {"data_type": "artists"}) == 3


async def test_a_projected_record_is_dead_lettered_whole_from_its_canonical_json(
    writer: FakeWriter, make: Make
) -> None:
    """Decoded on a worker, a record may keep only part of ``data``; the DLQ gets it all."""
    whole = {"id": "5", "bad": True, "title": "T", "notes": "long"}
    slim = Record(id="5", sha256="s5", data={"bad": True}, encoded=orjson.dumps(whole))
    async with make(config(batch_size=2, flush_interval=30)) as proc:
        d = FakeDelivery("batch", writer)
        await proc.add(A, [rec(4), slim], d, batch=True)
        await run_loop()
    [rejection] = d.settles[0]
    assert orjson.loads(rejection.body or b"") == {**whole, "sha256": "s5"}
    assert writer.committed_ids() == ["4"]


async def test_rejected_record_in_a_batch_message_is_dead_lettered_alone(
    writer: FakeWriter, metrics: Metrics, make: Make
) -> None:
    async with make(config(batch_size=8, flush_interval=30)) as proc:
        records = [rec(i, bad=(i == 5)) for i in range(8)]
        d = FakeDelivery("batch", writer)
        await proc.add(A, records, d, batch=True)
        await run_loop()
    assert len(d.settles) == 1
    [rejection] = d.settles[0]
    assert rejection.reason == "bad data in 5"
    assert rejection.body == body(records[5])
    assert orjson.loads(rejection.body or b"") == {"id": "5", "bad": True, "sha256": "5-v1"}
    assert sorted(writer.committed_ids(), key=int) == ["0", "1", "2", "3", "4", "6", "7"]
    assert sorted(r.id for r in d.committed_at_settle) == sorted(writer.committed_ids())
    assert not writer.duplicate_ids_in_a_write
    snap = metrics.snapshot()["artists"]
    assert (snap["consumed"], snap["written"], snap["dead_lettered"], snap["pending"]) == (
        8,
        7,
        1,
        0,
    )


async def test_rejected_single_record_message_is_dead_lettered_whole(
    writer: FakeWriter, make: Make
) -> None:
    async with make(config(batch_size=4, flush_interval=30)) as proc:
        ds = deliveries(writer, 4)
        for i, d in enumerate(ds):
            await proc.add(A, [rec(i, bad=(i == 2))], d)
        await run_loop()
    assert ds[2].settles == [[Rejection("bad data in 2", None)]]
    for i in (0, 1, 3):
        assert ds[i].settles == [[]]
    assert sorted(writer.committed_ids()) == ["0", "1", "3"]


async def test_several_bad_records_in_one_batch(
    writer: FakeWriter, metrics: Metrics, make: Make
) -> None:
    bad_ids = {0, 3, 4, 9}
    async with make(config(batch_size=10, flush_interval=30)) as proc:
        records = [rec(i, bad=(i in bad_ids)) for i in range(10)]
        d = FakeDelivery("batch", writer)
        singles = deliveries(writer, 4, "s")
        await proc.add(A, records[:6], d, batch=True)
        for s, r in zip(singles, records[6:], strict=True):
            await proc.add(A, [r], s)
        await run_loop()
    assert len(d.settles) == 1
    assert sorted(r.body or b"" for r in d.settles[0]) == sorted(
        body(records[i]) for i in (0, 3, 4)
    )
    assert singles[3].settles == [[Rejection("bad data in 9", None)]]
    assert [s.settles for s in singles[:3]] == [[[]], [[]], [[]]]
    assert sorted(writer.committed_ids(), key=int) == ["1", "2", "5", "6", "7", "8"]
    assert metrics.snapshot()["artists"]["dead_lettered"] == 4
    assert metrics.snapshot()["artists"]["pending"] == 0


async def test_all_records_bad(writer: FakeWriter, make: Make) -> None:
    async with make(config(batch_size=5, flush_interval=30)) as proc:
        d = FakeDelivery("batch", writer)
        await proc.add(A, [rec(i, bad=True) for i in range(5)], d, batch=True)
        await run_loop()
    assert len(d.settles[0]) == 5
    assert writer.committed == []
    assert not proc.failed.done()


async def test_unexpected_writer_error_sets_failed_and_leaves_delivery_unsettled(
    writer: FakeWriter, metrics: Metrics, make: Make
) -> None:
    boom = RuntimeError("driver bug")
    writer.fatal = boom
    async with make(config(batch_size=2, flush_interval=30)) as proc:
        d = FakeDelivery("d", writer)
        await proc.add(A, [rec(1), rec(2)], d, batch=True)
        await until(proc.failed.done)
        assert proc.failed.result() is boom
        await proc.drain(A)
        assert proc.held == 0
    assert not d.settled
    assert writer.committed == []
    assert metrics.snapshot()["artists"]["dead_lettered"] == 0


async def test_fatal_error_in_one_write_leaves_spanning_delivery_unsettled(
    writer: FakeWriter, make: Make
) -> None:
    writer.hold["b-v1"] = asyncio.Event()
    async with make(config(batch_size=2, flush_interval=30)) as proc:
        span = FakeDelivery("span", writer)
        other = FakeDelivery("other", writer)
        await proc.add(A, [rec("a"), rec("b")], span, batch=True)  # write 1, held
        await run_loop()
        assert len(writer.calls) == 1
        writer.fatal = ValueError("unexpected")
        writer.hold["b-v1"].set()
        await until(proc.failed.done)
        writer.fatal = None
        await proc.add(A, [rec("c"), rec("d")], other, batch=True)
        await run_loop()
        assert other.settled
    assert not span.settled
    assert isinstance(proc.failed.result(), ValueError)


# ---------------------------------------------------------------------------- ordering


async def test_two_versions_never_share_a_write_and_later_is_written_last(
    writer: FakeWriter, clock: ManualClock, make: Make
) -> None:
    writer.hold["x-v1"] = asyncio.Event()
    async with make(config(batch_size=10, flush_interval=1.0)) as proc:
        d = FakeDelivery("both", writer)
        await proc.add(A, [rec("x", "v1"), rec("y"), rec("x", "v2")], d, batch=True)
        await clock.advance(1.0)
        assert [[r.sha256 for r in b] for _, b in writer.calls] == [["x-v1", "y-v1"]]
        await clock.advance(10.0)  # v2 stays pending, past its interval, while v1 is written
        assert len(writer.calls) == 1
        writer.hold["x-v1"].set()
        await run_loop()  # v2 is overdue: written as soon as v1 has ended
        assert d.settled
    assert [[r.sha256 for r in b] for _, b in writer.committed] == [["x-v1", "y-v1"], ["x-v2"]]
    assert writer.events.index(("start", "x-v2")) > writer.events.index(("commit", "x-v1"))


async def test_versions_of_one_id_are_written_in_order_with_concurrency(
    writer: FakeWriter, make: Make
) -> None:
    cfg = config(batch_size=1, flush_interval=30, max_concurrent_flushes=4)
    async with make(cfg) as proc:
        ds = []
        for v in range(6):
            for rid in ("x", "y", "z"):
                d = FakeDelivery(f"{rid}{v}", writer)
                ds.append(d)
                await proc.add(A, [rec(rid, f"v{v}")], d)
            await proc.add(A, [rec(f"other{v}")], FakeDelivery("o", writer))
        await run_loop()
        assert all(d.settled for d in ds)
    assert not writer.duplicate_ids_in_a_write
    for rid in ("x", "y", "z"):
        shas = [f"{rid}-v{v}" for v in range(6)]
        committed = [r.sha256 for r in writer.committed_records if r.id == rid]
        assert committed == shas
        for earlier, later in itertools.pairwise(shas):
            assert writer.events.index(("start", later)) > writer.events.index(("commit", earlier))


async def test_versions_in_one_full_batch_are_split_across_writes(
    writer: FakeWriter, make: Make
) -> None:
    cfg = config(batch_size=4, flush_interval=30, max_concurrent_flushes=4)
    async with make(cfg) as proc:
        d = FakeDelivery("d", writer)
        records = [rec("x", "v1"), rec("x", "v2"), rec("x", "v3"), rec("y")]
        await proc.add(A, records, d, batch=True)
        await proc.drain(A)
        assert d.settles == [[]]
    assert not writer.duplicate_ids_in_a_write
    assert [r.sha256 for r in writer.committed_records if r.id == "x"] == [
        "x-v1",
        "x-v2",
        "x-v3",
    ]


async def test_blocked_version_does_not_delay_other_records_of_its_type(
    writer: FakeWriter, clock: ManualClock, make: Make
) -> None:
    writer.hold["x-v1"] = asyncio.Event()
    async with make(config(batch_size=10, flush_interval=1.0)) as proc:
        await proc.add(A, [rec("x", "v1")], FakeDelivery("x1", writer))
        await clock.advance(1.0)
        assert len(writer.calls) == 1
        await proc.add(A, [rec("x", "v2")], FakeDelivery("x2", writer))
        await clock.advance(2.0)  # x-v2 is overdue while x-v1 is written
        fresh = FakeDelivery("fresh", writer)
        other_type = FakeDelivery("label", writer)
        await proc.add(A, [rec("z")], fresh)
        await proc.add(L, [rec("z")], other_type)
        await clock.advance(1.0)
        assert fresh.settled
        assert other_type.settled
        assert ["z"] in [[r.id for r in b] for _, b in writer.committed]
        writer.hold["x-v1"].set()
    assert [r.sha256 for r in writer.committed_records if r.id == "x"] == ["x-v1", "x-v2"]


# ---------------------------------------------------------------------------- drain / close


async def test_drain_writes_pending_of_one_type_and_waits_for_inflight(
    writer: FakeWriter, make: Make
) -> None:
    writer.gate = asyncio.Event()
    async with make(config(batch_size=3, flush_interval=30)) as proc:
        artists = deliveries(writer, 5, "a")
        labels = deliveries(writer, 2, "l")
        for i, d in enumerate(artists):
            await proc.add(A, [rec(i)], d)  # 3 in flight (size), 2 pending
        for i, d in enumerate(labels):
            await proc.add(L, [rec(i)], d)
        await run_loop()
        assert len(writer.calls) == 1
        drain = asyncio.create_task(proc.drain(A))
        await run_loop()
        assert len(writer.calls) == 2
        assert not drain.done()
        writer.gate.set()
        await until(drain.done)
        assert all(d.settles == [[]] for d in artists)
        assert [t for t, _ in writer.calls] == [A, A]
        assert not any(d.settled for d in labels)
        await proc.drain(L)
        assert all(d.settles == [[]] for d in labels)
        await proc.drain(L)  # nothing left: returns at once
    assert len(writer.calls) == 3


async def test_drain_waits_for_held_back_versions(writer: FakeWriter, make: Make) -> None:
    writer.hold["x-v1"] = asyncio.Event()
    async with make(config(batch_size=10, flush_interval=30)) as proc:
        d1, d2 = FakeDelivery("x1", writer), FakeDelivery("x2", writer)
        await proc.add(A, [rec("x", "v1")], d1)
        await proc.add(A, [rec("x", "v2")], d2)
        drain = asyncio.create_task(proc.drain(A))
        await run_loop()
        assert len(writer.calls) == 1
        assert not drain.done()
        writer.hold["x-v1"].set()
        await until(drain.done)
        assert d1.settled
        assert d2.settled


async def test_close_drains_every_type_and_is_idempotent(
    writer: FakeWriter, clock: ManualClock, metrics: Metrics
) -> None:
    cfg = config(batch_size=100, flush_interval=30)
    proc = BatchProcessor(writer=writer, config=cfg, metrics=metrics, service="t", clock=clock)
    async with proc:
        ds = {t: FakeDelivery(t.value, writer) for t in DataType}
        for t, d in ds.items():
            await proc.add(t, [rec(1), rec(2)], d, batch=True)
        await proc.close()
        assert all(d.settles == [[]] for d in ds.values())
        assert {t for t, _ in writer.calls} == set(DataType)
        await proc.close()
    # __aexit__ closed it a third time
    assert all(len(d.settles) == 1 for d in ds.values())
    assert len(writer.calls) == len(DataType)
    with pytest.raises(RuntimeError, match="closed"):
        await proc.add(A, [rec(3)], FakeDelivery("late", writer))
    with pytest.raises(RuntimeError, match="closed"):
        await proc.add(A, [], FakeDelivery("late-empty", writer))
    assert all(s["pending"] == 0 for s in metrics.snapshot().values())


async def test_concurrent_close_waits_for_the_drain(writer: FakeWriter, make: Make) -> None:
    writer.gate = asyncio.Event()
    async with make(config(batch_size=100, flush_interval=30)) as proc:
        d = FakeDelivery("d", writer)
        await proc.add(A, [rec(1)], d)
        first = asyncio.create_task(proc.close())
        await run_loop()
        assert len(writer.calls) == 1
        second = asyncio.create_task(proc.close())
        await run_loop()
        assert not second.done()
        writer.gate.set()
        await until(lambda: first.done() and second.done())
        assert d.settled


async def test_add_waiting_for_room_when_closed_raises_and_loses_nothing(
    writer: FakeWriter, metrics: Metrics, make: Make
) -> None:
    cfg = config(batch_size=2, flush_interval=30, max_pending=2, max_concurrent_flushes=1)
    writer.gate = asyncio.Event()
    async with make(cfg) as proc:
        first = FakeDelivery("first", writer)
        late = FakeDelivery("late", writer)
        await proc.add(A, [rec(1), rec(2)], first, batch=True)
        waiting = asyncio.create_task(proc.add(A, [rec(3)], late))
        await run_loop()
        assert not waiting.done()
        closing = asyncio.create_task(proc.close())
        await run_loop()
        writer.gate.set()
        await until(lambda: closing.done() and waiting.done())
        with pytest.raises(RuntimeError, match="closed"):
            await waiting
    assert first.settled
    assert not late.settled  # never taken: the broker redelivers it
    assert writer.committed_ids() == ["1", "2"]
    assert proc.held == 0
    assert metrics.snapshot()["artists"]["pending"] == 0


async def test_abort_cancels_writes_and_settles_nothing(writer: FakeWriter, make: Make) -> None:
    writer.gate = asyncio.Event()
    async with make(config(batch_size=2, flush_interval=30)) as proc:
        running, pending = FakeDelivery("running", writer), FakeDelivery("pending", writer)
        await proc.add(A, [rec(1), rec(2)], running, batch=True)
        await proc.add(A, [rec(3)], pending)
        await run_loop()
        await proc.abort()
        writer.gate.set()
        await run_loop()
        assert writer.sizes() == [2]
        assert writer.committed == []
        assert not running.settled
        assert not pending.settled


# ---------------------------------------------------------------------------- metrics


async def test_metrics_snapshot_counts(
    writer: FakeWriter, clock: ManualClock, metrics: Metrics, make: Make
) -> None:
    async with make(config(batch_size=4, flush_interval=1.0)) as proc:
        ds = deliveries(writer, 4)
        await proc.add(A, [rec(1), rec(2, unchanged=True)], ds[0], batch=True)
        await proc.add(A, [rec(3, bad=True)], ds[1])
        await proc.add(A, [rec(4)], ds[2], rejections=[Rejection("invalid")])
        await proc.add(L, [rec(1, unchanged=True)], ds[3])
        assert metrics.snapshot()["artists"]["pending"] == 5
        await clock.advance(1.0)
        assert all(d.settled for d in ds)
    snap = metrics.snapshot()
    assert {k: snap["artists"][k] for k in ("consumed", "written", "unchanged")} == {
        "consumed": 5,
        "written": 2,
        "unchanged": 1,
    }
    assert snap["artists"]["dead_lettered"] == 2
    assert snap["artists"]["pending"] == 0
    assert snap["labels"]["consumed"] == 1
    assert snap["labels"]["unchanged"] == 1
    assert snap["labels"]["written"] == 0
    assert snap["labels"]["pending"] == 0
    assert snap["masters"]["consumed"] == 0
