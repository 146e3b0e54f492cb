"""Waiting out outages: try, back off, try again, until it works or we stop.

A program may start before its servers, in any order, and wait however long they take;
a write or completion waits out a database or broker outage the same way. Each failure is
one log line; a stop request (SIGTERM) ends a wait at once. Clock, sleep and jitter are
injected, so tests drive the loops without real sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import structlog

log = structlog.get_logger(__name__)

T = TypeVar("T")
# Sleeps ``seconds`` unless ``stop`` is set first; returns whether it was stopped.
Sleep = Callable[[float, asyncio.Event], Awaitable[bool]]


async def stoppable_sleep(seconds: float, stop: asyncio.Event) -> bool:
    """Sleep ``seconds``, returning early (True) as soon as ``stop`` is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    return stop.is_set()


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before attempt ``n + 1`` after ``n`` failures: ``base * 2**(n-1)``, capped,
    shortened by up to ``jitter`` of itself (random) so that replicas spread out."""

    base: float = 0.5
    cap: float = 30.0
    jitter: float = 0.25

    def delay(self, failures: int, draw: Callable[[], float] = random.random) -> float:
        grown = min(self.cap, self.base * 2.0 ** min(failures - 1, 32))
        return grown * (1.0 - self.jitter * draw()) if self.jitter else grown


# Between the attempts of a write or of completion work that failed on an outage.
RETRY = Backoff(base=0.4, cap=30.0, jitter=0.5)


async def retried(
    call: Callable[[], Awaitable[T]],
    *,
    errors: tuple[type[BaseException], ...],
    event: str,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    on_retry: Callable[[], None] | None = None,
    **fields: object,
) -> T:
    """What ``call`` returns once it does not raise one of ``errors`` (an outage): each
    failure is one ``event`` log line with ``fields``, then a :data:`RETRY` delay."""
    attempt = 0
    while True:
        try:
            return await call()
        except errors as e:
            attempt += 1
            delay = RETRY.delay(attempt)
            if on_retry is not None:
                on_retry()
            log.warning(
                event, **fields, attempt=attempt, delay_s=round(delay, 2), error=str(e) or repr(e)
            )
            await sleep(delay)


@dataclass(frozen=True, slots=True)
class Waiter:
    """How to wait: backoff, sleep, clock and random draw (the real ones by default)."""

    backoff: Backoff = Backoff()
    sleep: Sleep = stoppable_sleep
    clock: Callable[[], float] = time.monotonic
    draw: Callable[[], float] = random.random


async def wait_for_server(
    server: str,
    attempt: Callable[[], Awaitable[T]],
    *,
    errors: tuple[type[BaseException], ...],
    stop: asyncio.Event,
    waiter: Waiter = Waiter(),
) -> T | None:
    """Return what ``attempt`` returns once it does not raise one of ``errors``; None if
    ``stop`` is set first. Other exceptions propagate (a wrong password is not an outage
    to wait out)."""
    started = waiter.clock()
    failures = 0
    while not stop.is_set():
        try:
            return await attempt()
        except errors as e:
            failures += 1
            delay = waiter.backoff.delay(failures, waiter.draw)
            log.warning(
                "waiting for server",
                server=server,
                attempt=failures,
                error=str(e) or type(e).__name__,
                waited_s=round(waiter.clock() - started, 1),
                retry_in_s=round(delay, 2),
            )
            if await waiter.sleep(delay, stop):
                break
    log.info("stopped waiting for server", server=server, attempts=failures)
    return None
