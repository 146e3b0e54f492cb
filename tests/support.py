"""Test helpers: deadline-based waiting, a recording writer for runtime tests, settings."""

from __future__ import annotations

import asyncio
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

    def count(self, data_type: DataType) -> int:
        return len(self.written[data_type])
