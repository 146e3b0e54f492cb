"""Reaching any node of a RabbitMQ cluster: which node to try next, and when.

aio-pika's robust connection reconnects only to the URL it was opened with, so a program
whose node died would wait for that node. Instead :class:`NodeRing` tries every node of
``AMQP_URL`` in turn, from the one after the node lost, and waits a growing delay only
between whole rounds, so a live node is found within a round, at once.
"""

from __future__ import annotations

import math
import random
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import TypeVar
from urllib.parse import urlsplit

import structlog

from common.waiting import Backoff

log = structlog.get_logger(__name__)

T = TypeVar("T")
# Waits ``seconds`` (or less, when asked to stop); returns False when the caller must stop.
Sleep = Callable[[float], Awaitable[bool]]
Clock = Callable[[], float]

ROUND_BASE = 0.5  # seconds before the second round; doubled each round after
ROUND_CAP = 8.0


def node_of(url: str) -> str:
    """``host:port`` of an AMQP URL: what a log line may say about a node (no credentials)."""
    parts = urlsplit(url)
    port = parts.port or (5671 if parts.scheme == "amqps" else 5672)
    host = parts.hostname or "?"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class NodeRing:
    """The nodes of one cluster, and the node currently (or last) connected to."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        base: float = ROUND_BASE,
        cap: float = ROUND_CAP,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if not urls:
            raise ValueError("no broker URL given")
        self.urls = list(urls)
        self._base = base
        self._cap = cap
        self._jitter = jitter
        self.current: str | None = None

    def plan(self) -> Iterator[tuple[str, float]]:
        """Endless ``(url, seconds to wait before trying it)``: every node once per round,
        starting after the current one (the one just lost); a wait only before a new round."""
        start = 0 if self.current is None else self.urls.index(self.current) + 1
        n = len(self.urls)
        round_ = 0
        while True:
            for i in range(n):
                wait = self.delay(round_) if i == 0 and round_ > 0 else 0.0
                yield self.urls[(start + i) % n], wait
            round_ += 1

    def delay(self, round_: int) -> float:
        """Wait before round ``round_`` (1, 2, ...): :class:`~common.waiting.Backoff`
        with half of it random, so that replicas do not retry in step."""
        backoff = Backoff(base=self._base, cap=self._cap, jitter=0.5)
        return backoff.delay(round_, lambda: 1.0 - self._jitter())

    def connected(self, url: str) -> None:
        """Record the node now in use; logs the failover when it replaces another one."""
        old, self.current = self.current, url
        if old is None:
            log.info("amqp connected", node=node_of(url))
        else:
            log.warning("amqp failover", old_node=node_of(old), new_node=node_of(url))


async def open_any(
    ring: NodeRing,
    open_one: Callable[[str], Awaitable[T]],
    *,
    errors: tuple[type[BaseException], ...],
    sleep: Sleep,
    clock: Clock,
    give_up_after: float | None = None,
) -> T | None:
    """``open_one(url)`` of the nodes in ``ring``'s plan until one succeeds; one of
    ``errors`` moves on. None when ``sleep`` says stop, or once a round ends
    ``give_up_after`` seconds after the start (the last wait is cut so one round ends it).
    """
    deadline = None if give_up_after is None else clock() + give_up_after
    for url, wait in ring.plan():
        if wait > 0:  # a new round: every node failed in the last one
            left = math.inf if deadline is None else deadline - clock()
            if left <= 0 or not await sleep(min(wait, left)):
                return None
        try:
            opened = await open_one(url)
        except errors as e:
            log.warning("amqp connect failed", node=node_of(url), error=str(e) or repr(e))
            continue
        ring.connected(url)
        return opened
    raise AssertionError("unreachable: the plan is endless")  # pragma: no cover
