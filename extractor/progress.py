"""Progress of a long run: a bar on a terminal, a structlog line every so often elsewhere.

Callers report cumulative ``done`` units (records or bytes) and the share of the input
read; the reporter decides when to show it, so calling it per chunk costs nothing.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Protocol

import structlog

log = structlog.get_logger("extractor")


class Reporter(Protocol):
    def update(self, done: int, fraction: float) -> None: ...

    def finish(self, done: int) -> None: ...


class BarReporter:
    """A one-line bar redrawn at most ten times a second: ``label [####   ] 42.0% n unit/s``."""

    def __init__(self, label: str, unit: str, stream: IO[str], width: int = 30) -> None:
        self._label = label
        self._unit = unit
        self._stream = stream
        self._width = width
        self._start = time.monotonic()
        self._last = 0.0

    def update(self, done: int, fraction: float) -> None:
        now = time.monotonic()
        if now - self._last >= 0.1:
            self._last = now
            self._draw(done, fraction, now)

    def finish(self, done: int) -> None:
        self._draw(done, 1.0, time.monotonic())
        self._stream.write("\n")
        self._stream.flush()

    def _draw(self, done: int, fraction: float, now: float) -> None:
        filled = round(self._width * fraction)
        bar = "#" * filled + " " * (self._width - filled)
        rate = done / max(now - self._start, 1e-9)
        self._stream.write(
            f"\r{self._label} [{bar}] {fraction:6.1%} {done:,} {self._unit} "
            f"{rate:,.0f} {self._unit}/s "
        )
        self._stream.flush()


class LogReporter:
    """A structlog line every ``interval`` seconds or every ``every`` units, and at the end."""

    def __init__(self, label: str, unit: str, interval: float = 10.0, every: int = 0) -> None:
        self._label = label
        self._unit = unit
        self._interval = interval
        self._every = every
        self._start = time.monotonic()
        self._last_time = self._start
        self._last_done = 0

    def update(self, done: int, fraction: float) -> None:
        now = time.monotonic()
        due_by_count = self._every > 0 and done - self._last_done >= self._every
        if due_by_count or now - self._last_time >= self._interval:
            self._last_time, self._last_done = now, done
            self._emit("progress", done, fraction, now)

    def finish(self, done: int) -> None:
        self._emit("done", done, 1.0, time.monotonic())

    def _emit(self, event: str, done: int, fraction: float, now: float) -> None:
        elapsed = now - self._start
        log.info(
            event,
            file=self._label,
            unit=self._unit,
            done=done,
            percent=round(100 * fraction, 1),
            rate=round(done / max(elapsed, 1e-9)),
            elapsed_s=round(elapsed, 1),
        )


def reporter(label: str, unit: str, *, every: int = 0, stream: IO[str] | None = None) -> Reporter:
    """A bar when ``stream`` (stderr by default) is a terminal, log lines otherwise."""
    out = stream or sys.stderr
    if out.isatty():
        return BarReporter(label, unit, out)
    return LogReporter(label, unit, every=every)
