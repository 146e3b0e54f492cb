"""The resource lifecycle every long-lived object here shares (after psycopg_pool's).

A resource is opened by ``async with`` (or :meth:`open`) and released by :meth:`close`,
which must be idempotent: it runs on the way out of the ``async with`` and may also be
called directly, before or after.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self


class AsyncResource:
    """Base of an async context manager built on ``open()`` and ``close()``."""

    async def open(self) -> None:
        """Acquire what the resource needs; nothing unless a subclass says so."""

    async def close(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
