"""Writes a partial batch of a type once its oldest writable record has waited long enough."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

from common.clock import Clock, Timer
from common.records import DataType


class FlushTimer:
    """Calls ``on_due(data_type)`` ``interval`` seconds after the time given to :meth:`watch`.

    One timer per type, re-armed only when the watched time changes: arrivals after the
    oldest record do not move it.
    """

    def __init__(self, clock: Clock, interval: float, on_due: Callable[[DataType], None]) -> None:
        self._clock = clock
        self._interval = interval
        self._on_due = on_due
        self._armed: dict[DataType, tuple[float, Timer]] = {}

    def armed(self, data_type: DataType) -> bool:
        return data_type in self._armed

    def watch(self, data_type: DataType, since: float) -> None:
        """Time the type from ``since`` (the arrival of its oldest record that can be written
        now); ``inf`` stops timing it."""
        current = self._armed.get(data_type)
        if current is not None:
            if current[0] == since:
                return
            current[1].cancel()
            del self._armed[data_type]
        if math.isfinite(since):
            due = functools.partial(self._due, data_type)
            self._armed[data_type] = (since, self._clock.call_at(since + self._interval, due))

    def stop(self) -> None:
        for _, timer in self._armed.values():
            timer.cancel()
        self._armed.clear()

    def _due(self, data_type: DataType) -> None:
        del self._armed[data_type]
        self._on_due(data_type)
