"""Progress of a long run: a tqdm bar on a terminal, a structlog line every so often elsewhere.

Callers report cumulative ``done`` units (records or bytes) and the share of the input
file read; the reporter decides when to show it, so calling it per chunk costs nothing.
The ETA is the time taken so far scaled by the share still to read. Given the file's
``size``, the bytes read are shown as well.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import IO, Protocol

import structlog
from tqdm import tqdm

log = structlog.get_logger("extractor")

Clock = Callable[[], float]
# Without a size the bar counts thousandths of the file.
_STEPS = 1000
# tqdm puts ", " before the postfix (the records done).
_BAR = "{desc} {percentage:5.1f}%|{bar}| [{elapsed}<{remaining}{postfix}]"
_BAR_SIZED = (
    "{desc} {percentage:5.1f}%|{bar}| {n_fmt}/{total_fmt}B [{elapsed}<{remaining}{postfix}]"
)


class Reporter(Protocol):
    def update(self, done: int, fraction: float) -> None: ...

    def finish(self, done: int) -> None: ...


def eta_seconds(elapsed: float, fraction: float) -> float | None:
    """Seconds left if the rest of the file reads as fast as what was read so far."""
    if fraction <= 0:
        return None
    return elapsed * (1 - min(fraction, 1.0)) / fraction


class BarReporter:
    """A tqdm bar of the file read, with the records (or bytes) done and the ETA."""

    def __init__(self, label: str, unit: str, stream: IO[str], size: int | None = None) -> None:
        self._unit = unit
        self._total = size or _STEPS
        self._bar = tqdm(
            total=self._total,
            desc=label,
            file=stream,
            unit="B" if size else "",
            unit_scale=bool(size),
            unit_divisor=1024,
            bar_format=_BAR_SIZED if size else _BAR,
            mininterval=0.1,
            dynamic_ncols=True,
        )

    def update(self, done: int, fraction: float) -> None:
        self._advance(fraction)
        self._bar.set_postfix_str(f"{done:,} {self._unit}", refresh=False)

    def finish(self, done: int) -> None:
        self._advance(1.0)
        self._bar.set_postfix_str(f"{done:,} {self._unit}", refresh=False)
        self._bar.close()

    def _advance(self, fraction: float) -> None:
        position = round(min(fraction, 1.0) * self._total)
        if position > self._bar.n:
            self._bar.update(position - self._bar.n)


class LogReporter:
    """A structlog line every ``interval`` seconds or every ``every`` units, and at the end."""

    def __init__(
        self,
        label: str,
        unit: str,
        interval: float = 10.0,
        every: int = 0,
        *,
        size: int | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self._label = label
        self._unit = unit
        self._interval = interval
        self._every = every
        self._size = size
        self._clock = clock
        self._start = clock()
        self._last_time = self._start
        self._last_done = 0

    def update(self, done: int, fraction: float) -> None:
        now = self._clock()
        due_by_count = self._every > 0 and done - self._last_done >= self._every
        if due_by_count or now - self._last_time >= self._interval:
            self._last_time, self._last_done = now, done
            self._emit("progress", done, fraction, now)

    def finish(self, done: int) -> None:
        self._emit("done", done, 1.0, self._clock())

    def _emit(self, event: str, done: int, fraction: float, now: float) -> None:
        elapsed = now - self._start
        eta = eta_seconds(elapsed, fraction)
        sized = {} if self._size is None else {"bytes_read": round(fraction * self._size)}
        log.info(
            event,
            file=self._label,
            unit=self._unit,
            done=done,
            percent=round(100 * fraction, 1),
            **sized,
            rate=round(done / max(elapsed, 1e-9)),
            elapsed_s=round(elapsed, 1),
            eta_s=None if eta is None else round(eta),
        )


def reporter(
    label: str,
    unit: str,
    *,
    every: int = 0,
    stream: IO[str] | None = None,
    size: int | None = None,
) -> Reporter:
    """A bar when ``stream`` (stderr by default) is a terminal, log lines otherwise.

    ``size``: the file's size in bytes, when the caller knows it.
    """
    out = stream or sys.stderr
    if out.isatty():
        return BarReporter(label, unit, out, size)
    return LogReporter(label, unit, every=every, size=size)
