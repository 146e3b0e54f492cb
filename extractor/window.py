"""The window of published messages awaiting their broker confirms.

Up to ``max_in_flight`` messages (and ``max_in_flight_bytes`` of bodies) await their
confirms at once, which is what makes publishing fast; the bound keeps memory flat. The
first failure of any of them is kept and raised to the producer at its next call.
"""

from __future__ import annotations

import asyncio

from extractor.brokerlink import PublishFailed


class ConfirmWindow:
    """Tracks each message's publishing task until it settles (confirmed or failed)."""

    def __init__(self, *, max_in_flight: int, max_bytes: int) -> None:
        self._max_in_flight = max(1, max_in_flight)
        self._max_bytes = max(1, max_bytes)
        self._tasks: dict[asyncio.Future[None], int] = {}
        self._bytes = 0
        self._failure: PublishFailed | None = None
        self._settled = asyncio.Event()  # set whenever a message settles

    def __len__(self) -> int:
        return len(self._tasks)

    async def make_room(self, size: int) -> None:
        """Wait until a body of ``size`` bytes fits; raise the first failure."""
        self.raise_failure()
        while self._tasks and (
            len(self._tasks) >= self._max_in_flight or self._bytes + size > self._max_bytes
        ):
            await self._next_settlement()
            self.raise_failure()

    def add(self, task: asyncio.Future[None], size: int) -> None:
        self._tasks[task] = size
        self._bytes += size
        task.add_done_callback(self._done)

    async def drain(self) -> None:
        """Wait until every message so far has settled; raise the first failure."""
        while self._tasks:
            await self._next_settlement()
        self.raise_failure()

    async def abandon(self, grace: float) -> None:
        """Let the messages settle within ``grace`` seconds, then cancel what has not."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=grace)
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.wait(list(self._tasks))

    def raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    async def _next_settlement(self) -> None:
        """Wait until at least one more message settles (O(1), whatever the window)."""
        self._settled.clear()
        await self._settled.wait()

    def _done(self, task: asyncio.Future[None]) -> None:
        self._bytes -= self._tasks.pop(task, 0)
        self._settled.set()
        if task.cancelled():
            return
        error = task.exception()
        if error is not None and self._failure is None:
            self._failure = (
                error
                if isinstance(error, PublishFailed)
                else PublishFailed(f"publishing failed: {error!r}")
            )
