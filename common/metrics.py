"""Per-service counters: what ``/health`` reports and what ``/metrics`` exposes.

One :class:`Metrics` per service, owning its own Prometheus registry (no globals).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from common.records import DataType

_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


@dataclass
class TypeStats:
    """Running totals of one data type since start (plain numbers for /health and logs)."""

    consumed: int = 0
    written: int = 0
    added: int = 0
    unchanged: int = 0
    dead_lettered: int = 0
    pending: int = 0
    batches: int = 0
    extraction_complete: str | None = None  # version of the last extraction_complete seen
    first_at: float | None = None
    last_at: float | None = None

    def rate(self) -> float:
        """End-to-end records/s committed since the first record of this type arrived."""
        done = self.written + self.unchanged
        if self.first_at is None or self.last_at is None or self.last_at <= self.first_at:
            return 0.0
        return done / (self.last_at - self.first_at)


@dataclass
class Metrics:
    service: str
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    types: dict[DataType, TypeStats] = field(
        default_factory=lambda: {t: TypeStats() for t in DataType}
    )

    def __post_init__(self) -> None:
        labels = ["data_type"]
        r = self.registry
        # Counted on every delivery: read from ``types`` when scraped, not kept twice.
        r.register(_PerMessage(self.types))
        self.written = Counter(
            "records_written", "Records committed as new/changed", labels, registry=r
        )
        self.unchanged = Counter(
            "records_unchanged", "Records whose hash matched", labels, registry=r
        )
        self.dead = Counter("records_dead_lettered", "Records sent to the DLQ", labels, registry=r)
        self.queue_depth = Gauge(
            "queue_depth", "Messages ready in the broker queue", labels, registry=r
        )
        self.retries = Counter(
            "write_retries", "Transient write failures retried", labels, registry=r
        )
        self.batch_seconds = Histogram(
            "batch_duration_seconds",
            "Time to commit one batch",
            labels,
            buckets=_BUCKETS,
            registry=r,
        )

    def record_consumed(self, data_type: DataType, n: int) -> None:
        stats = self.types[data_type]
        stats.consumed += n
        stats.pending += n
        if stats.first_at is None:
            stats.first_at = time.monotonic()

    def record_batch(
        self, data_type: DataType, *, written: int, unchanged: int, seconds: float, added: int = 0
    ) -> None:
        stats = self.types[data_type]
        stats.written += written
        stats.added += added
        stats.unchanged += unchanged
        stats.batches += 1
        stats.last_at = time.monotonic()
        self.written.labels(data_type.value).inc(written)
        self.unchanged.labels(data_type.value).inc(unchanged)
        self.batch_seconds.labels(data_type.value).observe(seconds)

    def record_settled(self, data_type: DataType, n: int) -> None:
        stats = self.types[data_type]
        stats.pending -= n

    def record_dead_letter(self, data_type: DataType, n: int = 1) -> None:
        self.types[data_type].dead_lettered += n
        self.dead.labels(data_type.value).inc(n)

    def record_retry(self, data_type: DataType) -> None:
        self.retries.labels(data_type.value).inc()

    def snapshot(self) -> dict[str, dict[str, float | int | str | None]]:
        return {
            t.value: {
                "consumed": s.consumed,
                "written": s.written,
                "unchanged": s.unchanged,
                "dead_lettered": s.dead_lettered,
                "pending": s.pending,
                "batches": s.batches,
                "records_per_sec": round(s.rate(), 1),
                "extraction_complete": s.extraction_complete,
            }
            for t, s in self.types.items()
        }


class _PerMessage(Collector):
    """``records_consumed`` and ``records_pending``, from the running totals at scrape time."""

    def __init__(self, types: dict[DataType, TypeStats]) -> None:
        self._types = types

    def collect(self) -> Iterator[Metric]:
        consumed = CounterMetricFamily("records_consumed", "Records received", labels=["data_type"])
        pending = GaugeMetricFamily(
            "records_pending", "Records buffered, not yet committed", labels=["data_type"]
        )
        for data_type, stats in self._types.items():
            consumed.add_metric([data_type.value], stats.consumed)
            pending.add_metric([data_type.value], stats.pending)
        yield consumed
        yield pending
