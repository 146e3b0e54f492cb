"""common.waiting: bounded exponential backoff, one log line per attempt, a prompt stop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
import structlog.testing

from common.waiting import Backoff, Waiter, stoppable_sleep, wait_for_server

Attempt = Callable[[], Awaitable[str]]


class FakeTime:
    """A clock that advances only when the loop under test sleeps."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.now = 100.0
        self.slept: list[float] = []
        self._stop_after = stop_after

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float, stop: asyncio.Event) -> bool:
        self.slept.append(seconds)
        self.now += seconds
        if self._stop_after is not None and len(self.slept) >= self._stop_after:
            stop.set()
        return stop.is_set()

    def waiter(self, backoff: Backoff | None = None) -> Waiter:
        return Waiter(
            backoff=backoff or Backoff(base=0.5, cap=4.0),
            sleep=self.sleep,
            clock=self.clock,
            draw=lambda: 1.0,
        )


def failing(times: int, result: str = "connected") -> tuple[list[int], Attempt]:
    calls: list[int] = []

    async def attempt() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise ConnectionRefusedError("connection refused")
        return result

    return calls, attempt


async def test_retries_with_capped_doubling_until_the_server_answers() -> None:
    fake = FakeTime()
    calls, attempt = failing(6)
    with structlog.testing.capture_logs() as logs:
        got = await wait_for_server(
            "postgresql",
            attempt,
            errors=(OSError,),
            stop=asyncio.Event(),
            waiter=fake.waiter(Backoff(base=0.5, cap=4.0, jitter=0.0)),
        )
    assert got == "connected"
    assert len(calls) == 7
    assert fake.slept == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    lines = [e for e in logs if e["event"] == "waiting for server"]
    assert [e["attempt"] for e in lines] == [1, 2, 3, 4, 5, 6]
    assert [e["retry_in_s"] for e in lines] == fake.slept
    assert [e["waited_s"] for e in lines] == [0.0, 0.5, 1.5, 3.5, 7.5, 11.5]
    assert {e["server"] for e in lines} == {"postgresql"}
    assert lines[0]["error"] == "connection refused"
    assert lines[0]["log_level"] == "warning"


async def test_jitter_shortens_a_delay_by_at_most_its_share() -> None:
    backoff = Backoff(base=1.0, cap=8.0, jitter=0.25)
    assert backoff.delay(3, lambda: 0.0) == 4.0
    assert backoff.delay(3, lambda: 1.0) == 3.0
    assert backoff.delay(100, lambda: 0.0) == 8.0


async def test_a_stop_while_waiting_ends_the_wait_without_another_attempt() -> None:
    fake = FakeTime(stop_after=2)
    calls, attempt = failing(1000)
    got = await wait_for_server(
        "rabbitmq",
        attempt,
        errors=(OSError,),
        stop=asyncio.Event(),
        waiter=fake.waiter(),
    )
    assert got is None
    assert len(calls) == 2


async def test_stopped_before_starting_makes_no_attempt() -> None:
    stop = asyncio.Event()
    stop.set()
    calls, attempt = failing(0)
    assert await wait_for_server("neo4j", attempt, errors=(OSError,), stop=stop) is None
    assert calls == []


async def test_an_error_that_is_not_an_outage_propagates_at_once() -> None:
    async def attempt() -> str:
        raise PermissionError("password authentication failed")

    fake = FakeTime()
    with pytest.raises(PermissionError):
        await wait_for_server(
            "postgresql",
            attempt,
            errors=(ConnectionError,),
            stop=asyncio.Event(),
            waiter=fake.waiter(),
        )
    assert fake.slept == []


async def test_the_real_sleep_returns_as_soon_as_stop_is_set() -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().call_soon(stop.set)
    assert await asyncio.wait_for(stoppable_sleep(3600, stop), timeout=5) is True
    assert await stoppable_sleep(0, asyncio.Event()) is False
