"""How far a load has come and when it will be done: pure arithmetic on the running totals.

Every ``PROGRESS_INTERVAL`` the service takes a :class:`Reading` of each type (from
:class:`~common.metrics.TypeStats` and the broker's queue depth) and :class:`Progress`
turns it into :class:`Figures`. The clock is injected, so the figures are exact in tests.

The ETA is what remains (messages ready times the records per message seen so far, plus
the records received but not yet settled) over the rate of the last interval: the recent
rate, since a load's speed changes from file to file and as the database grows.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Reading:
    """One type's running totals at one moment."""

    done: int  # records settled: written, unchanged or dead-lettered
    consumed: int  # records received
    messages: int  # messages received (a batch message carries many records)
    pending: int  # records received, not yet settled
    ready: int | None  # messages ready in the broker queue; None when unknown
    started: float | None  # clock time the first record arrived; None before


@dataclass(frozen=True, slots=True)
class Figures:
    done: int
    interval_rate: float  # records/s over the last interval
    overall_rate: float  # records/s since the first record arrived
    ready: int | None
    records_per_message: float | None
    remaining: int | None  # records still to settle; None when the depth is unknown
    eta_s: float | None  # None while nothing moves or the depth is unknown
    active: bool  # worth a log line: work is queued, held, or was done this interval

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "done": self.done,
            "rate_interval": round(self.interval_rate, 1),
            "rate_overall": round(self.overall_rate, 1),
            "queue_ready": self.ready,
            "records_per_message": _round(self.records_per_message, 1),
            "remaining": self.remaining,
            "eta_s": _round(self.eta_s, 0),
        }


class Progress:
    """Turns successive readings of each key (a data type) into figures."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._last: dict[Hashable, tuple[float, int]] = {}

    def sample(self, key: Hashable, reading: Reading) -> Figures:
        now = self._clock()
        since, done_then = self._last.get(key, (reading.started, 0))
        self._last[key] = (now, reading.done)
        moved = reading.done - done_then
        interval_rate = _per_second(moved, now, since)
        overall_rate = _per_second(reading.done, now, reading.started)
        per_message = reading.consumed / reading.messages if reading.messages else None
        remaining = _remaining(reading, per_message)
        return Figures(
            done=reading.done,
            interval_rate=interval_rate,
            overall_rate=overall_rate,
            ready=reading.ready,
            records_per_message=per_message,
            remaining=remaining,
            eta_s=_eta(remaining, interval_rate),
            active=moved > 0 or reading.pending > 0 or bool(reading.ready),
        )


def _per_second(count: int, now: float, since: float | None) -> float:
    if since is None or now <= since:
        return 0.0
    return count / (now - since)


def _remaining(reading: Reading, per_message: float | None) -> int | None:
    if reading.ready is None:
        return None
    if reading.ready == 0:
        return reading.pending
    if per_message is None:
        return None  # messages wait, but how many records they carry is not known yet
    return round(reading.ready * per_message) + reading.pending


def _eta(remaining: int | None, rate: float) -> float | None:
    if remaining is None:
        return None
    if remaining == 0:
        return 0.0
    return remaining / rate if rate > 0 else None


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
