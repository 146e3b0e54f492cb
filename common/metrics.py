"""Per-service counters: what ``/health`` reports and what ``/metrics`` exposes.

One :class:`Metrics` per service, owning its own Prometheus registry (no globals).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from common.progress import Figures, Reading
from common.records import DataType

_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


@dataclass
class TypeStats:
    """Running totals of one data type since start (plain numbers for /health and logs)."""

    consumed: int = 0
    messages: int = 0  # deliveries the records came in (records per message for the ETA)
    written: int = 0
    added: int = 0
    unchanged: int = 0
    dead_lettered: int = 0
    retries: int = 0  # transient write failures retried
    pending: int = 0
    batches: int = 0
    extraction_complete: str | None = None  # version of the last extraction_complete seen
    first_at: float | None = None
    last_at: float | None = None
    ready: int | None = None  # messages ready in the broker queue, when last read
    progress: Figures | None = None  # the last progress figures (PROGRESS_INTERVAL)

    def rate(self) -> float:
        """End-to-end records/s committed since the first record of this type arrived."""
        done = self.written + self.unchanged
        if self.first_at is None or self.last_at is None or self.last_at <= self.first_at:
            return 0.0
        return done / (self.last_at - self.first_at)

    def reading(self) -> Reading:
        """The totals :class:`~common.progress.Progress` works from."""
        return Reading(
            done=self.written + self.unchanged + self.dead_lettered,
            consumed=self.consumed,
            messages=self.messages,
            pending=self.pending,
            ready=self.ready,
            started=self.first_at,
        )


@dataclass
class Metrics:
    service: str
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    types: dict[DataType, TypeStats] = field(
        default_factory=lambda: {t: TypeStats() for t in DataType}
    )

    def __post_init__(self) -> None:
        # The counts live in ``types`` alone: /metrics reads them when scraped, as /health
        # and the log lines do.
        self.registry.register(_Totals(self.types))
        self.batch_seconds = Histogram(
            "batch_duration_seconds",
            "Time to commit one batch",
            ["data_type"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        for data_type in DataType:  # every type's series exists from the start
            self.batch_seconds.labels(data_type.value)

    def record_consumed(self, data_type: DataType, n: int) -> None:
        stats = self.types[data_type]
        stats.consumed += n
        stats.messages += 1
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
        self.batch_seconds.labels(data_type.value).observe(seconds)

    def record_settled(self, data_type: DataType, n: int) -> None:
        stats = self.types[data_type]
        stats.pending -= n

    def record_dead_letter(self, data_type: DataType, n: int = 1) -> None:
        self.types[data_type].dead_lettered += n

    def record_retry(self, data_type: DataType) -> None:
        self.types[data_type].retries += 1

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {
            t.value: {
                "consumed": s.consumed,
                "messages": s.messages,
                "written": s.written,
                "unchanged": s.unchanged,
                "dead_lettered": s.dead_lettered,
                "pending": s.pending,
                "batches": s.batches,
                "records_per_sec": round(s.rate(), 1),
                "extraction_complete": s.extraction_complete,
                **({"progress": s.progress.as_dict()} if s.progress else {}),
            }
            for t, s in self.types.items()
        }


class _Totals(Collector):
    """The series read from the running totals at scrape time: the record counts, pending,
    the queue depth and the progress figures (a figure not known yet is left out)."""

    def __init__(self, types: dict[DataType, TypeStats]) -> None:
        self._types = types

    def collect(self) -> Iterator[Metric]:
        f = _families()
        for data_type, stats in self._types.items():
            name = data_type.value
            f["records_consumed"].add_metric([name], stats.consumed)
            f["records_written"].add_metric([name], stats.written)
            f["records_unchanged"].add_metric([name], stats.unchanged)
            f["records_dead_lettered"].add_metric([name], stats.dead_lettered)
            f["write_retries"].add_metric([name], stats.retries)
            f["records_pending"].add_metric([name], stats.pending)
            if stats.ready is not None:
                f["queue_depth"].add_metric([name], stats.ready)
            if (figures := stats.progress) is None:
                continue
            f["progress_records_per_second"].add_metric([name, "interval"], figures.interval_rate)
            f["progress_records_per_second"].add_metric([name, "overall"], figures.overall_rate)
            optional = {
                "records_per_message": figures.records_per_message,
                "progress_remaining_records": figures.remaining,
                "progress_eta_seconds": figures.eta_s,
            }
            for family, value in optional.items():
                if value is not None:
                    f[family].add_metric([name], value)
        yield from f.values()


def _families() -> dict[str, CounterMetricFamily | GaugeMetricFamily]:
    label = ["data_type"]
    gauges = {
        "records_pending": "Records buffered, not yet committed",
        "queue_depth": "Messages ready in the broker queue",
        "records_per_message": "Records per message received",
        "progress_remaining_records": "Records queued or held, not yet settled",
        "progress_eta_seconds": "Seconds until the queue is empty at the recent rate",
    }
    counters = {
        "records_consumed": "Records received",
        "records_written": "Records committed as new/changed",
        "records_unchanged": "Records whose hash matched",
        "records_dead_lettered": "Records sent to the DLQ",
        "write_retries": "Transient write failures retried",
    }
    families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {
        n: CounterMetricFamily(n, h, labels=label) for n, h in counters.items()
    }
    families |= {n: GaugeMetricFamily(n, h, labels=label) for n, h in gauges.items()}
    families["progress_records_per_second"] = GaugeMetricFamily(
        "progress_records_per_second",
        "Records settled per second over the last progress interval or since the start",
        labels=[*label, "window"],
    )
    return families
