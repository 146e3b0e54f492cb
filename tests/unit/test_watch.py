"""The progress loop: one line per active type, the same figures in /health and /metrics."""

from __future__ import annotations

from structlog.testing import capture_logs

from common.metrics import Metrics
from common.records import DataType
from common.watch import ProgressLog, QueueDepths


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def load(metrics: Metrics, data_type: DataType, messages: int, per_message: int) -> None:
    """``messages`` batch messages received and written, through the metrics' own calls."""
    for _ in range(messages):
        metrics.record_consumed(data_type, per_message)
        metrics.record_batch(data_type, written=per_message, unchanged=0, seconds=0.1)
        metrics.record_settled(data_type, per_message)


def progress_log(metrics: Metrics, clock: Clock) -> ProgressLog:
    depths = QueueDepths(metrics, clock=clock)  # no queues: the depth is set by the test
    return ProgressLog(service="svc", metrics=metrics, depths=depths, interval=30, clock=clock)


async def test_one_line_per_active_type_with_the_eta() -> None:
    metrics = Metrics("svc")
    clock = Clock(1000.0)
    load(metrics, DataType.LABELS, messages=4, per_message=500)
    metrics.types[DataType.LABELS].first_at = 970.0
    metrics.types[DataType.LABELS].ready = 6
    with capture_logs() as logs:
        await progress_log(metrics, clock).tick()
    assert logs == [
        {
            "event": "progress",
            "log_level": "info",
            "service": "svc",
            "data_type": "labels",
            "pending": 0,
            "done": 2000,
            "rate_interval": 66.7,
            "rate_overall": 66.7,
            "queue_ready": 6,
            "records_per_message": 500.0,
            "remaining": 3000,
            "eta_s": 45.0,
        }
    ]


async def test_figures_reach_health_and_metrics() -> None:
    metrics = Metrics("svc")
    clock = Clock(1000.0)
    load(metrics, DataType.ARTISTS, messages=2, per_message=100)
    stats = metrics.types[DataType.ARTISTS]
    stats.first_at, stats.ready = 990.0, 3
    await progress_log(metrics, clock).tick()
    snap = metrics.snapshot()
    assert snap["artists"]["progress"]["eta_s"] == 15.0  # 300 records at 20/s
    assert snap["artists"]["messages"] == 2
    assert "progress" not in snap["releases"]  # nothing of it came
    value = metrics.registry.get_sample_value
    labels = {"data_type": "artists"}
    assert value("progress_eta_seconds", labels) == 15.0
    assert value("progress_remaining_records", labels) == 300
    assert value("records_per_message", labels) == 100.0
    assert value("queue_depth", labels) == 3
    assert value("progress_records_per_second", labels | {"window": "interval"}) == 20.0
    assert value("progress_records_per_second", labels | {"window": "overall"}) == 20.0
    assert value("progress_eta_seconds", {"data_type": "releases"}) is None


async def test_idle_types_are_not_logged_again() -> None:
    metrics = Metrics("svc")
    clock = Clock(1000.0)
    load(metrics, DataType.MASTERS, messages=1, per_message=10)
    metrics.types[DataType.MASTERS].first_at = 999.0
    metrics.types[DataType.MASTERS].ready = 0
    watch = progress_log(metrics, clock)
    with capture_logs() as first:
        await watch.tick()
    clock.now = 1030.0
    with capture_logs() as second:
        await watch.tick()
    assert [e["data_type"] for e in first] == ["masters"]
    assert second == []


def test_every_type_has_its_counters_from_the_start() -> None:
    value = Metrics("svc").registry.get_sample_value
    for data_type in DataType:
        labels = {"data_type": data_type.value}
        assert value("records_dead_lettered_total", labels) == 0
        assert value("write_retries_total", labels) == 0
        assert value("batch_duration_seconds_count", labels) == 0


async def test_the_loop_stops_on_close() -> None:
    metrics = Metrics("svc")
    watch = progress_log(metrics, Clock(0.0))
    async with watch:
        pass
    await watch.close()  # idempotent
