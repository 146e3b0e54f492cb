"""Unit tests of :class:`common.batching.BatchProcessor`'s batching rules.

A fake writer and a fake delivery stand in for the database and the broker: these tests
check *when* records are written and *when* messages are settled, not persistence.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

import orjson
import pytest

from common import batching
from common.batching import BatchProcessor, Rejection
from common.messages import ExtractionComplete, FileComplete
from common.metrics import Metrics
from common.records import DataType, Record
from common.settings import BatchConfig
from common.sink import BatchRejected, TransientWriteError, WriteResult

A = DataType.ARTISTS
L = DataType.LABELS


# ---------------------------------------------------------------------------- helpers


async def eventually(predicate: Callable[[], bool], within: float = 5.0) -> None:
    """Poll until ``predicate()`` holds; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {within} s")
        await asyncio.sleep(0.01)


async def stays(predicate: Callable[[], bool], duration: float = 0.2) -> None:
    """Check that ``predicate()`` holds throughout ``duration`` seconds (negative checks)."""
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        assert predicate()
        await asyncio.sleep(0.01)
    assert predicate()


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

    async def extraction_complete(self, data_type: DataType, message: ExtractionComplete) -> None:
        raise AssertionError("not used by BatchProcessor")


class FakeDelivery:
    """Records each settle call: its rejections, when, and what was committed by then."""

    def __init__(self, name: str, writer: FakeWriter, log: list[str] | None = None) -> None:
        self.name = name
        self.writer = writer
        self.log = log
        self.settles: list[list[Rejection]] = []
        self.settled_at: float | None = None
        self.committed_at_settle: list[Record] = []

    @property
    def settled(self) -> bool:
        return bool(self.settles)

    async def settle(self, rejections: Sequence[Rejection]) -> None:
        self.settles.append(list(rejections))
        self.settled_at = time.monotonic()
        self.committed_at_settle = list(self.writer.committed_records)
        if self.log is not None:
            self.log.append(self.name)


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


@asynccontextmanager
async def processor(
    writer: FakeWriter, cfg: BatchConfig, metrics: Metrics | None = None
) -> AsyncIterator[BatchProcessor]:
    async with BatchProcessor(
        writer=writer, config=cfg, metrics=metrics or Metrics("test"), service="test"
    ) as proc:
        yield proc


def body(record: Record) -> bytes:
    return orjson.dumps({**record.data, "sha256": record.sha256})


@pytest.fixture
def writer() -> FakeWriter:
    return FakeWriter()


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batching, "_MAX_BACKOFF", 0.001)


# ---------------------------------------------------------------------------- flushing


async def test_flush_by_size_writes_exactly_batch_size(writer: FakeWriter) -> None:
    async with processor(writer, config(batch_size=5, flush_interval=30)) as proc:
        deliveries = [FakeDelivery(f"d{i}", writer) for i in range(12)]
        for i, d in enumerate(deliveries):
            await proc.add(A, [rec(i)], d)
        await eventually(lambda: len(writer.committed) == 2)
        assert [len(b) for _, b in writer.calls] == [5, 5]
        assert writer.committed_ids() == [str(i) for i in range(10)]
        await eventually(lambda: all(d.settled for d in deliveries[:10]))
        # the last two wait for the timer (30 s away) or a drain
        await stays(lambda: len(writer.calls) == 2, 0.1)
        assert not deliveries[10].settled
        assert not deliveries[11].settled
        await proc.drain(A)
        assert [len(b) for _, b in writer.calls] == [5, 5, 2]
        assert all(d.settles == [[]] for d in deliveries)
        assert not proc.failed.done()


async def test_flush_by_size_splits_one_large_message(writer: FakeWriter) -> None:
    async with processor(writer, config(batch_size=4, flush_interval=30)) as proc:
        d = FakeDelivery("big", writer)
        await proc.add(A, [rec(i) for i in range(10)], d, batch=True)
        await eventually(lambda: len(writer.committed) == 2)
        assert [len(b) for _, b in writer.calls] == [4, 4]
        assert not d.settled  # two records still pending
        await stays(lambda: not d.settled, 0.1)
        await proc.drain(A)
        assert [len(b) for _, b in writer.calls] == [4, 4, 2]
        assert d.settles == [[]]
        assert len(d.committed_at_settle) == 10


async def test_flush_by_time_writes_a_partial_batch(writer: FakeWriter) -> None:
    async with processor(writer, config(batch_size=100, flush_interval=0.05)) as proc:
        deliveries = [FakeDelivery(f"d{i}", writer) for i in range(3)]
        started = time.monotonic()
        for i, d in enumerate(deliveries):
            await proc.add(A, [rec(i)], d)
        await eventually(lambda: all(d.settled for d in deliveries))
        assert [len(b) for _, b in writer.calls] == [3]
        assert min(d.settled_at or 0 for d in deliveries) - started >= 0.05
        # a later record starts a new interval of its own
        later = FakeDelivery("later", writer)
        await proc.add(A, [rec(99)], later)
        await eventually(lambda: later.settled)
        assert [len(b) for _, b in writer.calls] == [3, 1]


async def test_flush_interval_counts_from_oldest_pending_record(writer: FakeWriter) -> None:
    interval = 0.3
    async with processor(writer, config(batch_size=100, flush_interval=interval)) as proc:
        first, second = FakeDelivery("first", writer), FakeDelivery("second", writer)
        t0 = time.monotonic()
        await proc.add(A, [rec(1)], first)
        await asyncio.sleep(0.2)  # spacing between arrivals, not an assertion
        t1 = time.monotonic()
        await proc.add(A, [rec(2)], second)
        await eventually(lambda: first.settled and second.settled)
        assert [len(b) for _, b in writer.calls] == [2]
        assert first.settled_at is not None
        assert first.settled_at - t0 >= interval
        # written on the oldest record's deadline, not the newest one's
        assert first.settled_at < t1 + interval


async def test_each_type_is_batched_separately(writer: FakeWriter) -> None:
    async with processor(writer, config(batch_size=2, flush_interval=30)) as proc:
        await proc.add(A, [rec(1)], FakeDelivery("a1", writer))
        await proc.add(L, [rec(1)], FakeDelivery("l1", writer))
        await stays(lambda: not writer.calls, 0.1)
        await proc.add(L, [rec(2)], FakeDelivery("l2", writer))
        await eventually(lambda: len(writer.committed) == 1)
        assert writer.calls[0][0] is L
        assert writer.committed_ids(L) == ["1", "2"]
        await proc.drain(A)
        assert writer.committed_ids(A) == ["1"]


# ---------------------------------------------------------------------------- settling


async def test_message_spanning_two_writes_settles_after_the_later_one(
    writer: FakeWriter,
) -> None:
    # The first write (holding one record of "span") is held open; the second commits.
    writer.hold["a-v1"] = asyncio.Event()
    async with processor(writer, config(batch_size=3, flush_interval=0.05)) as proc:
        before = FakeDelivery("before", writer)
        span = FakeDelivery("span", writer)
        await proc.add(A, [rec("a"), rec("b")], before, batch=True)
        await proc.add(A, [rec("c"), rec("d")], span, batch=True)
        # write 1 = a, b, c (size); write 2 = d (timer)
        await eventually(lambda: len(writer.committed) == 1)
        assert [r.id for r in writer.committed[0][1]] == ["d"]
        assert [[r.id for r in b] for _, b in writer.calls] == [["a", "b", "c"], ["d"]]
        await stays(lambda: not span.settled and not before.settled, 0.15)
        writer.hold["a-v1"].set()
        await eventually(lambda: span.settled and before.settled)
        assert span.settles == [[]]
        assert {r.id for r in span.committed_at_settle} >= {"c", "d"}


async def test_message_spanning_two_writes_waits_for_the_second(writer: FakeWriter) -> None:
    # Now the first write commits and the second is held open.
    writer.hold["d-v1"] = asyncio.Event()
    async with processor(writer, config(batch_size=3, flush_interval=0.05)) as proc:
        before = FakeDelivery("before", writer)
        span = FakeDelivery("span", writer)
        await proc.add(A, [rec("a"), rec("b")], before, batch=True)
        await proc.add(A, [rec("c"), rec("d")], span, batch=True)
        await eventually(lambda: before.settled)
        await eventually(lambda: len(writer.calls) == 2)
        await stays(lambda: not span.settled, 0.15)
        writer.hold["d-v1"].set()
        await eventually(lambda: span.settled)
        assert span.settles == [[]]
        assert before.settles == [[]]
        assert {r.id for r in span.committed_at_settle} == {"a", "b", "c", "d"}


async def test_every_delivery_settled_exactly_once(writer: FakeWriter) -> None:
    cfg = config(batch_size=7, flush_interval=0.02, max_pending=50, max_concurrent_flushes=3)
    async with processor(writer, cfg) as proc:
        deliveries = []
        n = 0
        for i in range(60):
            d = FakeDelivery(f"d{i}", writer)
            deliveries.append(d)
            size = 1 + i % 4
            await proc.add(A if i % 3 else L, [rec(n + k) for k in range(size)], d, batch=True)
            n += size
        await eventually(lambda: all(d.settled for d in deliveries))
        await proc.close()
    assert all(d.settles == [[]] for d in deliveries)
    assert len(writer.committed_records) == n
    assert not writer.duplicate_ids_in_a_write


async def test_delivery_without_records_settles_at_once(writer: FakeWriter) -> None:
    metrics = Metrics("test")
    async with processor(writer, config(flush_interval=30), metrics) as proc:
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
    writer: FakeWriter,
) -> None:
    metrics = Metrics("test")
    async with processor(writer, config(batch_size=100, flush_interval=0.05), metrics) as proc:
        d = FakeDelivery("mixed", writer)
        invalid = Rejection("no id", b'{"name": "x"}')
        await proc.add(A, [rec(1), rec(2)], d, rejections=[invalid], batch=True)
        assert not d.settled
        await eventually(lambda: d.settled)
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


async def test_max_pending_blocks_add_until_a_write_finishes(writer: FakeWriter) -> None:
    limit = 4
    cfg = config(batch_size=2, flush_interval=0.05, max_pending=limit, max_concurrent_flushes=1)
    writer.gate = asyncio.Event()
    observed: list[int] = []
    async with processor(writer, cfg) as proc:
        writer.on_write = lambda: observed.append(proc.held)
        added: list[FakeDelivery] = []

        async def produce() -> None:
            for i in range(12):
                d = FakeDelivery(f"d{i}", writer)
                await proc.add(A, [rec(i)], d)
                observed.append(proc.held)
                added.append(d)

        producer = asyncio.create_task(produce())
        await eventually(lambda: len(added) == limit)
        await stays(lambda: len(added) == limit and proc.held == limit, 0.15)
        assert not producer.done()
        writer.gate.set()
        await asyncio.wait_for(producer, 5)
        await eventually(lambda: all(d.settled for d in added))
    assert len(added) == 12
    assert max(observed) <= limit
    assert proc.held == 0


async def test_max_pending_admits_an_oversized_message_when_empty(writer: FakeWriter) -> None:
    cfg = config(batch_size=2, flush_interval=0.05, max_pending=3)
    async with processor(writer, cfg) as proc:
        d = FakeDelivery("huge", writer)
        await asyncio.wait_for(proc.add(A, [rec(i) for i in range(5)], d, batch=True), 5)
        await eventually(lambda: d.settled)
        assert proc.held == 0


async def test_held_never_exceeds_max_pending_with_many_producers(writer: FakeWriter) -> None:
    limit = 10
    cfg = config(batch_size=3, flush_interval=0.01, max_pending=limit, max_concurrent_flushes=2)
    observed: list[int] = []
    async with processor(writer, cfg) as proc:
        writer.on_write = lambda: observed.append(proc.held)
        deliveries: list[FakeDelivery] = []

        async def produce(start: int) -> None:
            for i in range(start, start + 30, 2):
                d = FakeDelivery(f"d{i}", writer)
                deliveries.append(d)
                await proc.add(A, [rec(i), rec(i + 1)], d, batch=True)
                observed.append(proc.held)

        await asyncio.wait_for(asyncio.gather(*(produce(k * 100) for k in range(4))), 10)
        await eventually(lambda: len(deliveries) == 60 and all(d.settled for d in deliveries))
    assert max(observed) <= limit
    assert len(writer.committed_records) == 120


async def test_at_most_max_concurrent_flushes_writes_run(writer: FakeWriter) -> None:
    cfg = config(batch_size=1, flush_interval=30, max_concurrent_flushes=3)
    writer.gate = asyncio.Event()
    async with processor(writer, cfg) as proc:
        deliveries = [FakeDelivery(f"d{i}", writer) for i in range(10)]
        for i, d in enumerate(deliveries):
            await proc.add(A if i % 2 else L, [rec(i)], d)
        await eventually(lambda: writer.active == 3)
        await stays(lambda: writer.active == 3 and len(writer.calls) == 3, 0.15)
        writer.gate.set()
        await eventually(lambda: all(d.settled for d in deliveries))
    assert writer.max_active == 3
    assert len(writer.committed) == 10


async def test_a_serial_type_writes_one_batch_at_a_time_without_holding_others_back(
    writer: FakeWriter,
) -> None:
    cfg = config(
        batch_size=1, flush_interval=30, max_concurrent_flushes=3, serial_types=frozenset({A})
    )
    writer.gate = asyncio.Event()

    def started(data_type: DataType) -> int:
        return sum(1 for t, _ in writer.calls if t is data_type)

    async with processor(writer, cfg) as proc:
        deliveries = [FakeDelivery(f"d{i}", writer) for i in range(12)]
        for i, d in enumerate(deliveries):
            await proc.add(A if i % 2 else L, [rec(i)], d)
        await eventually(lambda: writer.active == 3)
        await stays(lambda: started(A) == 1 and started(L) == 2, 0.15)
        writer.gate.set()
        await eventually(lambda: all(d.settled for d in deliveries))
    assert len(writer.committed) == 12


@pytest.mark.parametrize(
    ("batch", "sizes"),
    [(True, [5, 12, 12, 11]), (False, [5] * 8)],
    ids=["batch-messages", "one-record-messages"],
)
async def test_a_serial_write_takes_what_waited_meanwhile_of_batch_messages(
    writer: FakeWriter, batch: bool, sizes: list[int]
) -> None:
    """Up to the serial batch size of batch-message records; one-record messages keep
    writes of the batch size (there the consumer's loop is the busy part)."""
    cfg = config(batch_size=5, flush_interval=30, serial_types=frozenset({A}), serial_batch_size=12)
    writer.gate = asyncio.Event()
    async with processor(writer, cfg) as proc:
        deliveries = [FakeDelivery(f"d{i}", writer) for i in range(40)]
        for i, d in enumerate(deliveries[:5]):
            await proc.add(A, [rec(i)], d, batch=batch)
        await eventually(lambda: writer.active == 1)
        for i, d in enumerate(deliveries[5:], start=5):  # 35 wait while the first write runs
            await proc.add(A, [rec(i)], d, batch=batch)
        await stays(lambda: len(writer.calls) == 1, 0.1)  # nothing formed behind it
        writer.gate.set()
        await eventually(lambda: all(d.settled for d in deliveries))
    assert [len(records) for _, records in writer.calls] == sizes
    assert writer.committed_ids() == [str(i) for i in range(40)]
    assert writer.max_active == 1


async def test_a_serial_remainder_below_the_batch_size_waits_for_the_timer(
    writer: FakeWriter,
) -> None:
    cfg = config(
        batch_size=5, flush_interval=0.2, serial_types=frozenset({A}), serial_batch_size=20
    )
    writer.gate = asyncio.Event()
    async with processor(writer, cfg) as proc:
        first = [FakeDelivery(f"d{i}", writer) for i in range(5)]
        for i, d in enumerate(first):
            await proc.add(A, [rec(i)], d, batch=True)
        await eventually(lambda: writer.active == 1)
        late = [FakeDelivery(f"late{i}", writer) for i in range(3)]
        for i, d in enumerate(late, start=5):
            await proc.add(A, [rec(i)], d, batch=True)
        await stays(lambda: len(writer.calls) == 1, 0.4)  # no timer flush while it runs
        writer.gate.set()
        await eventually(lambda: all(d.settled for d in late))
    assert [len(batch) for _, batch in writer.calls] == [5, 3]


async def test_types_that_are_not_serial_keep_batches_of_the_batch_size(
    writer: FakeWriter,
) -> None:
    cfg = config(batch_size=5, flush_interval=30, serial_batch_size=50)
    async with processor(writer, cfg) as proc:
        deliveries = [FakeDelivery(f"d{i}", writer) for i in range(20)]
        for i, d in enumerate(deliveries):
            await proc.add(A, [rec(i)], d)
        await eventually(lambda: all(d.settled for d in deliveries))
    assert [len(batch) for _, batch in writer.calls] == [5, 5, 5, 5]


# ---------------------------------------------------------------------------- failures


@pytest.mark.usefixtures("fast_backoff")
async def test_transient_errors_are_retried_without_dead_lettering(writer: FakeWriter) -> None:
    metrics = Metrics("test")
    writer.transient = 10**9  # down until further notice
    async with processor(writer, config(batch_size=2, flush_interval=30), metrics) as proc:
        d1, d2 = FakeDelivery("d1", writer), FakeDelivery("d2", writer)
        await proc.add(A, [rec(1)], d1)
        await proc.add(A, [rec(2)], d2)
        await eventually(lambda: len(writer.calls) >= 5)
        assert not d1.settled
        assert not d2.settled
        assert writer.committed == []
        writer.transient = 0  # back up
        await eventually(lambda: d1.settled and d2.settled)
    assert d1.settles == [[]]
    assert d2.settles == [[]]
    assert all(len(b) == 2 for _, b in writer.calls)  # retried whole, never split
    retries = metrics.registry.get_sample_value("write_retries_total", {"data_type": "artists"})
    assert retries == len(writer.calls) - 1
    snap = metrics.snapshot()["artists"]
    assert snap["dead_lettered"] == 0
    assert snap["written"] == 2
    assert snap["pending"] == 0
    assert not proc.failed.done()


@pytest.mark.usefixtures("fast_backoff")
async def test_a_few_transient_errors_then_success(writer: FakeWriter) -> None:
    metrics = Metrics("test")
    writer.transient = 3
    async with processor(writer, config(batch_size=1, flush_interval=30), metrics) as proc:
        d = FakeDelivery("d", writer)
        await proc.add(A, [rec(1)], d)
        await eventually(lambda: d.settled)
    assert len(writer.calls) == 4
    assert d.settles == [[]]
    assert metrics.registry.get_sample_value("write_retries_total", {"data_type": "artists"}) == 3


async def test_a_projected_record_is_dead_lettered_whole_from_its_canonical_json(
    writer: FakeWriter,
) -> None:
    """Decoded on a worker, a record may keep only part of ``data``; the DLQ gets it all."""
    whole = {"id": "5", "bad": True, "title": "T", "notes": "long"}
    slim = Record(id="5", sha256="s5", data={"bad": True}, encoded=orjson.dumps(whole))
    async with processor(writer, config(batch_size=2, flush_interval=30)) as proc:
        d = FakeDelivery("batch", writer)
        await proc.add(A, [rec(4), slim], d, batch=True)
        await eventually(lambda: d.settled)
    [rejection] = d.settles[0]
    assert orjson.loads(rejection.body or b"") == {**whole, "sha256": "s5"}
    assert writer.committed_ids() == ["4"]


async def test_rejected_record_in_a_batch_message_is_dead_lettered_alone(
    writer: FakeWriter,
) -> None:
    metrics = Metrics("test")
    async with processor(writer, config(batch_size=8, flush_interval=30), metrics) as proc:
        records = [rec(i, bad=(i == 5)) for i in range(8)]
        d = FakeDelivery("batch", writer)
        await proc.add(A, records, d, batch=True)
        await eventually(lambda: d.settled)
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


async def test_rejected_single_record_message_is_dead_lettered_whole(writer: FakeWriter) -> None:
    async with processor(writer, config(batch_size=4, flush_interval=30)) as proc:
        deliveries = [FakeDelivery(f"d{i}", writer) for i in range(4)]
        for i, d in enumerate(deliveries):
            await proc.add(A, [rec(i, bad=(i == 2))], d)
        await eventually(lambda: all(d.settled for d in deliveries))
    assert deliveries[2].settles == [[Rejection("bad data in 2", None)]]
    for i in (0, 1, 3):
        assert deliveries[i].settles == [[]]
    assert sorted(writer.committed_ids()) == ["0", "1", "3"]


async def test_several_bad_records_in_one_batch(writer: FakeWriter) -> None:
    metrics = Metrics("test")
    bad_ids = {0, 3, 4, 9}
    async with processor(writer, config(batch_size=10, flush_interval=30), metrics) as proc:
        records = [rec(i, bad=(i in bad_ids)) for i in range(10)]
        d = FakeDelivery("batch", writer)
        singles = [FakeDelivery(f"s{i}", writer) for i in range(4)]
        await proc.add(A, records[:6], d, batch=True)
        for s, r in zip(singles, records[6:], strict=True):
            await proc.add(A, [r], s)
        await eventually(lambda: d.settled and all(s.settled for s in singles))
    assert len(d.settles) == 1
    assert sorted(r.body or b"" for r in d.settles[0]) == sorted(
        body(records[i]) for i in (0, 3, 4)
    )
    assert singles[3].settles == [[Rejection("bad data in 9", None)]]
    assert [s.settles for s in singles[:3]] == [[[]], [[]], [[]]]
    assert sorted(writer.committed_ids(), key=int) == ["1", "2", "5", "6", "7", "8"]
    assert metrics.snapshot()["artists"]["dead_lettered"] == 4
    assert metrics.snapshot()["artists"]["pending"] == 0


async def test_all_records_bad(writer: FakeWriter) -> None:
    async with processor(writer, config(batch_size=5, flush_interval=30)) as proc:
        d = FakeDelivery("batch", writer)
        await proc.add(A, [rec(i, bad=True) for i in range(5)], d, batch=True)
        await eventually(lambda: d.settled)
    assert len(d.settles[0]) == 5
    assert writer.committed == []
    assert not proc.failed.done()


async def test_unexpected_writer_error_sets_failed_and_leaves_delivery_unsettled(
    writer: FakeWriter,
) -> None:
    boom = RuntimeError("driver bug")
    writer.fatal = boom
    metrics = Metrics("test")
    async with processor(writer, config(batch_size=2, flush_interval=30), metrics) as proc:
        d = FakeDelivery("d", writer)
        await proc.add(A, [rec(1), rec(2)], d, batch=True)
        assert await asyncio.wait_for(proc.failed, 5) is boom
        await proc.drain(A)
        assert proc.held == 0
    assert not d.settled
    assert writer.committed == []
    assert metrics.snapshot()["artists"]["dead_lettered"] == 0


async def test_fatal_error_in_one_write_leaves_spanning_delivery_unsettled(
    writer: FakeWriter,
) -> None:
    writer.hold["b-v1"] = asyncio.Event()
    async with processor(writer, config(batch_size=2, flush_interval=30)) as proc:
        span = FakeDelivery("span", writer)
        other = FakeDelivery("other", writer)
        await proc.add(A, [rec("a"), rec("b")], span, batch=True)  # write 1, held
        await eventually(lambda: len(writer.calls) == 1)
        writer.fatal = ValueError("unexpected")
        writer.hold["b-v1"].set()
        await asyncio.wait_for(proc.failed, 5)
        writer.fatal = None
        await proc.add(A, [rec("c"), rec("d")], other, batch=True)
        await eventually(lambda: other.settled)
    assert not span.settled
    assert isinstance(proc.failed.result(), ValueError)


# ---------------------------------------------------------------------------- ordering


async def test_two_versions_never_share_a_write_and_later_is_written_last(
    writer: FakeWriter,
) -> None:
    writer.hold["x-v1"] = asyncio.Event()
    async with processor(writer, config(batch_size=10, flush_interval=0.05)) as proc:
        d = FakeDelivery("both", writer)
        await proc.add(A, [rec("x", "v1"), rec("y"), rec("x", "v2")], d, batch=True)
        await eventually(lambda: len(writer.calls) == 1)
        assert [r.sha256 for r in writer.calls[0][1]] == ["x-v1", "y-v1"]
        # v2 stays pending, well past the flush interval, while v1 is being written
        await stays(lambda: len(writer.calls) == 1, 0.25)
        writer.hold["x-v1"].set()
        await eventually(lambda: d.settled)
    assert [[r.sha256 for r in b] for _, b in writer.committed] == [["x-v1", "y-v1"], ["x-v2"]]
    assert writer.events.index(("start", "x-v2")) > writer.events.index(("commit", "x-v1"))


async def test_versions_of_one_id_are_written_in_order_with_concurrency(
    writer: FakeWriter,
) -> None:
    cfg = config(batch_size=1, flush_interval=0.01, max_concurrent_flushes=4)
    async with processor(writer, cfg) as proc:
        deliveries = []
        for v in range(6):
            for rid in ("x", "y", "z"):
                d = FakeDelivery(f"{rid}{v}", writer)
                deliveries.append(d)
                await proc.add(A, [rec(rid, f"v{v}")], d)
            await proc.add(A, [rec(f"other{v}")], FakeDelivery("o", writer))
        await eventually(lambda: all(d.settled for d in deliveries))
    assert not writer.duplicate_ids_in_a_write
    for rid in ("x", "y", "z"):
        shas = [f"{rid}-v{v}" for v in range(6)]
        committed = [r.sha256 for r in writer.committed_records if r.id == rid]
        assert committed == shas
        for earlier, later in itertools.pairwise(shas):
            assert writer.events.index(("start", later)) > writer.events.index(("commit", earlier))


async def test_versions_in_one_full_batch_are_split_across_writes(writer: FakeWriter) -> None:
    cfg = config(batch_size=4, flush_interval=30, max_concurrent_flushes=4)
    async with processor(writer, cfg) as proc:
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
    writer: FakeWriter,
) -> None:
    writer.hold["x-v1"] = asyncio.Event()
    async with processor(writer, config(batch_size=10, flush_interval=0.05)) as proc:
        await proc.add(A, [rec("x", "v1")], FakeDelivery("x1", writer))
        await eventually(lambda: len(writer.calls) == 1)
        await proc.add(A, [rec("x", "v2")], FakeDelivery("x2", writer))
        await asyncio.sleep(0.1)  # let x-v2 become overdue while x-v1 is written
        fresh = FakeDelivery("fresh", writer)
        other_type = FakeDelivery("label", writer)
        await proc.add(A, [rec("z")], fresh)
        await proc.add(L, [rec("z")], other_type)
        await eventually(lambda: fresh.settled and other_type.settled)
        assert ["z"] in [[r.id for r in b] for _, b in writer.committed]
        writer.hold["x-v1"].set()
    assert [r.sha256 for r in writer.committed_records if r.id == "x"] == ["x-v1", "x-v2"]


# ---------------------------------------------------------------------------- drain / close


async def test_drain_writes_pending_of_one_type_and_waits_for_inflight(
    writer: FakeWriter,
) -> None:
    cfg = config(batch_size=3, flush_interval=30)
    writer.gate = asyncio.Event()
    async with processor(writer, cfg) as proc:
        artists = [FakeDelivery(f"a{i}", writer) for i in range(5)]
        labels = [FakeDelivery(f"l{i}", writer) for i in range(2)]
        for i, d in enumerate(artists):
            await proc.add(A, [rec(i)], d)  # 3 in flight (size), 2 pending
        for i, d in enumerate(labels):
            await proc.add(L, [rec(i)], d)
        await eventually(lambda: len(writer.calls) == 1)
        drain = asyncio.create_task(proc.drain(A))
        await eventually(lambda: len(writer.calls) == 2)
        await stays(lambda: not drain.done(), 0.1)
        writer.gate.set()
        await asyncio.wait_for(drain, 5)
        assert all(d.settles == [[]] for d in artists)
        assert [t for t, _ in writer.calls] == [A, A]
        assert not any(d.settled for d in labels)
        await proc.drain(L)
        assert all(d.settles == [[]] for d in labels)
        await proc.drain(L)  # nothing left: returns at once
    assert len(writer.calls) == 3


async def test_drain_waits_for_held_back_versions(writer: FakeWriter) -> None:
    writer.hold["x-v1"] = asyncio.Event()
    async with processor(writer, config(batch_size=10, flush_interval=30)) as proc:
        d1, d2 = FakeDelivery("x1", writer), FakeDelivery("x2", writer)
        await proc.add(A, [rec("x", "v1")], d1)
        await proc.add(A, [rec("x", "v2")], d2)
        drain = asyncio.create_task(proc.drain(A))
        await eventually(lambda: len(writer.calls) == 1)
        await stays(lambda: not drain.done(), 0.1)
        writer.hold["x-v1"].set()
        await asyncio.wait_for(drain, 5)
        assert d1.settled
        assert d2.settled


async def test_close_drains_every_type_and_is_idempotent(writer: FakeWriter) -> None:
    metrics = Metrics("test")
    cfg = config(batch_size=100, flush_interval=30)
    proc = BatchProcessor(writer=writer, config=cfg, metrics=metrics, service="t")
    async with proc:
        deliveries = {t: FakeDelivery(t.value, writer) for t in DataType}
        for t, d in deliveries.items():
            await proc.add(t, [rec(1), rec(2)], d, batch=True)
        await proc.close()
        assert all(d.settles == [[]] for d in deliveries.values())
        assert {t for t, _ in writer.calls} == set(DataType)
        await proc.close()
    # __aexit__ closed it a third time
    assert all(len(d.settles) == 1 for d in deliveries.values())
    assert len(writer.calls) == len(DataType)
    with pytest.raises(RuntimeError, match="closed"):
        await proc.add(A, [rec(3)], FakeDelivery("late", writer))
    with pytest.raises(RuntimeError, match="closed"):
        await proc.add(A, [], FakeDelivery("late-empty", writer))
    assert all(s["pending"] == 0 for s in metrics.snapshot().values())


async def test_concurrent_close_waits_for_the_drain(writer: FakeWriter) -> None:
    writer.gate = asyncio.Event()
    async with processor(writer, config(batch_size=100, flush_interval=30)) as proc:
        d = FakeDelivery("d", writer)
        await proc.add(A, [rec(1)], d)
        first = asyncio.create_task(proc.close())
        await eventually(lambda: len(writer.calls) == 1)
        second = asyncio.create_task(proc.close())
        await stays(lambda: not second.done(), 0.1)
        writer.gate.set()
        await asyncio.wait_for(asyncio.gather(first, second), 5)
        assert d.settled


async def test_add_waiting_for_room_when_closed_raises_and_loses_nothing(
    writer: FakeWriter,
) -> None:
    cfg = config(batch_size=2, flush_interval=30, max_pending=2, max_concurrent_flushes=1)
    writer.gate = asyncio.Event()
    metrics = Metrics("test")
    async with processor(writer, cfg, metrics) as proc:
        first = FakeDelivery("first", writer)
        late = FakeDelivery("late", writer)
        await proc.add(A, [rec(1), rec(2)], first, batch=True)
        waiting = asyncio.create_task(proc.add(A, [rec(3)], late))
        await stays(lambda: not waiting.done(), 0.1)
        closing = asyncio.create_task(proc.close())
        await asyncio.sleep(0)
        writer.gate.set()
        await asyncio.wait_for(closing, 5)
        with pytest.raises(RuntimeError, match="closed"):
            await asyncio.wait_for(waiting, 5)
    assert first.settled
    assert not late.settled  # never taken: the broker redelivers it
    assert writer.committed_ids() == ["1", "2"]
    assert proc.held == 0
    assert metrics.snapshot()["artists"]["pending"] == 0


# ---------------------------------------------------------------------------- metrics


async def test_metrics_snapshot_counts(writer: FakeWriter) -> None:
    metrics = Metrics("test")
    async with processor(writer, config(batch_size=4, flush_interval=0.05), metrics) as proc:
        deliveries = [
            FakeDelivery("a", writer),
            FakeDelivery("b", writer),
            FakeDelivery("c", writer),
            FakeDelivery("d", writer),
        ]
        await proc.add(A, [rec(1), rec(2, unchanged=True)], deliveries[0], batch=True)
        await proc.add(A, [rec(3, bad=True)], deliveries[1])
        await proc.add(A, [rec(4)], deliveries[2], rejections=[Rejection("invalid")])
        await proc.add(L, [rec(1, unchanged=True)], deliveries[3])
        assert metrics.snapshot()["artists"]["pending"] == 5
        await eventually(lambda: all(d.settled for d in deliveries))
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
