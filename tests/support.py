"""Test helpers: deadline-based waiting, a manual clock, a recording writer, settings."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from pydantic import Field

from common.messages import ExtractionComplete, FileComplete
from common.records import DataType, Record
from common.settings import BatchConfig, CommonSettings
from common.sink import WriteResult


async def eventually(
    predicate: Callable[[], bool | Awaitable[bool]], *, within: float = 10, what: str = ""
) -> None:
    """Poll ``predicate`` until it is true; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s: {what or predicate}")
        await asyncio.sleep(0.02)


async def run_loop(turns: int = 200) -> None:
    """Let every task that can make progress without time passing do so."""
    for _ in range(turns):
        await asyncio.sleep(0)  # one turn of the event loop: no time passes


async def until(predicate: Callable[[], bool], *, turns: int = 2000) -> None:
    """Run the loop until ``predicate()`` holds; fail if it does not within ``turns`` turns."""
    for _ in range(turns):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"condition not met while the loop ran: {predicate}")


class _Call:
    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def run(self) -> None:
        if not self.cancelled:
            self.callback()


class ManualClock:
    """A :class:`common.clock.Clock` whose time moves only by :meth:`advance`."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._calls: list[tuple[float, int, _Call]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self._now

    def call_at(self, when: float, callback: Callable[[], None]) -> _Call:
        call = _Call(callback)
        if when <= self._now:
            asyncio.get_running_loop().call_soon(call.run)
        else:
            heapq.heappush(self._calls, (when, next(self._order), call))
        return call

    async def sleep(self, seconds: float) -> None:
        woken = asyncio.get_running_loop().create_future()
        self.call_at(self._now + seconds, lambda: woken.done() or woken.set_result(None))
        await woken

    async def advance(self, seconds: float) -> None:
        """Move time on; each callback due on the way runs at its own time, and the loop
        runs after it until nothing more can happen then."""
        target = self._now + seconds
        while self._calls and self._calls[0][0] <= target:
            when, _, call = heapq.heappop(self._calls)
            self._now = when
            call.run()
            await run_loop()
        self._now = target
        await run_loop()


class RuntimeSettings(CommonSettings):
    """Settings for runtime tests: the common ones plus in-memory batch tuning."""

    batch_size: int = Field(5, gt=0)
    flush_interval: float = 0.2
    max_pending: int = 1000
    max_concurrent_flushes: int = 2

    def batch(self) -> BatchConfig:
        return BatchConfig(
            self.batch_size, self.flush_interval, self.max_pending, self.max_concurrent_flushes
        )


@dataclass
class RecordingWriter:
    """Remembers what it was asked to write; can be held closed with ``gate``."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)
    events: list[tuple[str, DataType, list[str]]] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    written: dict[DataType, dict[str, Record]] = field(
        default_factory=lambda: {t: {} for t in DataType}
    )
    held: dict[DataType, str] = field(default_factory=dict)  # the version held per type

    def __post_init__(self) -> None:
        self.gate.set()

    async def write(self, data_type: DataType, records: Sequence[Record]) -> WriteResult:
        self.started.extend(r.id for r in records)
        await self.gate.wait()
        unchanged = 0
        for r in records:
            old = self.written[data_type].get(r.id)
            unchanged += old is not None and old.sha256 == r.sha256
            self.written[data_type][r.id] = r
        self.events.append(("write", data_type, [r.id for r in records]))
        return WriteResult(written=len(records) - unchanged, unchanged=unchanged)

    async def file_complete(self, message: FileComplete) -> None:
        self.events.append(("file_complete", message.data_type, []))

    async def extraction_complete(
        self, data_type: DataType, message: ExtractionComplete, *, dead_letters: int
    ) -> int:
        self.events.append(("extraction_complete", data_type, []))
        return 0

    async def held_version(self, data_type: DataType) -> str | None:
        return self.held.get(data_type)

    async def delete(self, data_type: DataType, ids: Sequence[str], *, version: str) -> int:
        gone = [i for i in ids if self.written[data_type].pop(i, None) is not None]
        self.events.append(("delete", data_type, list(ids)))
        return len(gone)

    def count(self, data_type: DataType) -> int:
        return len(self.written[data_type])
