"""common.failover: which node is tried when, on a fake clock (no sleeps)."""

from __future__ import annotations

import itertools

import aiormq
import pytest
import structlog

from common.failover import NodeRing, node_of, open_any
from common.inbound import ChannelLost
from common.link import connection_lost

A, B, C = (f"amqp://u:secret@{h}:{p}/" for h, p in [("a", 5681), ("b", 5682), ("c", 5683)])


class FakeTime:
    """A clock that only moves when slept on; remembers every sleep."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []
        self.stop_after: int | None = None

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> bool:
        self.slept.append(seconds)
        self.now += seconds
        return self.stop_after is None or len(self.slept) < self.stop_after


class Nodes:
    """Opens a URL when it is up; records the attempts with the time they were made."""

    def __init__(self, time: FakeTime, up: set[str]) -> None:
        self.time = time
        self.up = up
        self.tried: list[tuple[str, float]] = []

    async def open(self, url: str) -> str:
        self.tried.append((url, self.time.now))
        if url not in self.up:
            raise ConnectionRefusedError("refused")
        return f"conn:{url}"


def ring(*urls: str) -> NodeRing:
    return NodeRing(urls, base=0.5, cap=4.0, jitter=lambda: 1.0)  # factor 1.0: no randomness


def test_the_plan_starts_after_the_lost_node_and_waits_only_between_rounds() -> None:
    r = ring(A, B, C)
    assert list(itertools.islice(r.plan(), 4)) == [(A, 0.0), (B, 0.0), (C, 0.0), (A, 0.5)]
    r.connected(B)
    plan = list(itertools.islice(r.plan(), 7))
    assert [u for u, _ in plan] == [C, A, B, C, A, B, C]
    assert [w for _, w in plan] == [0.0, 0.0, 0.0, 0.5, 0.0, 0.0, 1.0]


def test_round_delays_grow_to_the_cap_with_jitter_below_it() -> None:
    assert [ring(A).delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    low = NodeRing([A], base=0.5, cap=4.0, jitter=lambda: 0.0)
    assert [low.delay(n) for n in (1, 5)] == [0.25, 2.0]


async def test_a_dead_node_is_skipped_at_once_for_the_next_live_one() -> None:
    t = FakeTime()
    r = ring(A, B, C)
    r.connected(A)
    nodes = Nodes(t, up={C})
    got = await open_any(r, nodes.open, errors=(OSError,), sleep=t.sleep, clock=t.clock)
    assert got == f"conn:{C}"
    assert nodes.tried == [(B, 100.0), (C, 100.0)]  # A (just lost) last; no waiting
    assert t.slept == []
    assert r.current == C


async def test_when_every_node_is_down_it_retries_in_rounds_with_backoff() -> None:
    t = FakeTime()
    r = ring(A, B)
    nodes = Nodes(t, up=set())
    opened = None

    async def open_third_round(url: str) -> str:
        if len(nodes.tried) == 6:
            nodes.up.add(url)
        return await nodes.open(url)

    opened = await open_any(r, open_third_round, errors=(OSError,), sleep=t.sleep, clock=t.clock)
    assert opened == f"conn:{A}"
    assert t.slept == [0.5, 1.0, 2.0]
    assert [u for u, _ in nodes.tried] == [A, B, A, B, A, B, A]


async def test_it_gives_up_at_the_deadline() -> None:
    t = FakeTime()
    nodes = Nodes(t, up=set())
    got = await open_any(
        ring(A, B), nodes.open, errors=(OSError,), sleep=t.sleep, clock=t.clock, give_up_after=3.0
    )
    assert got is None
    assert t.now == pytest.approx(103.0)
    assert t.slept == [0.5, 1.0, 1.5]  # the last wait is cut to the deadline
    assert nodes.tried[-1] == (B, 103.0)  # one last round at the deadline itself


async def test_a_stop_while_waiting_ends_it() -> None:
    t = FakeTime()
    t.stop_after = 1
    nodes = Nodes(t, up=set())
    got = await open_any(ring(A, B), nodes.open, errors=(OSError,), sleep=t.sleep, clock=t.clock)
    assert got is None
    assert len(nodes.tried) == 2


async def test_other_errors_are_not_swallowed() -> None:
    t = FakeTime()

    async def broken(url: str) -> str:
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        await open_any(ring(A), broken, errors=(OSError,), sleep=t.sleep, clock=t.clock)


def test_a_failover_is_one_line_naming_both_nodes_without_the_password() -> None:
    r = ring(A, B)
    with structlog.testing.capture_logs() as logs:
        r.connected(A)
        r.connected(B)
    assert [e["event"] for e in logs] == ["amqp connected", "amqp failover"]
    assert (logs[1]["old_node"], logs[1]["new_node"]) == ("a:5681", "b:5682")
    assert "secret" not in repr(logs)


@pytest.mark.parametrize(
    ("url", "node"),
    [
        ("amqp://u:p@h/", "h:5672"),
        ("amqps://u:p@h/", "h:5671"),
        ("amqp://u:p%40x@[::1]:5700/v", "[::1]:5700"),
    ],
)
def test_node_of_is_host_and_port_only(url: str, node: str) -> None:
    assert node_of(url) == node


def test_an_empty_list_is_refused() -> None:
    with pytest.raises(ValueError, match="no broker URL"):
        NodeRing([])


@pytest.mark.parametrize(
    ("error", "lost"),
    [
        (ChannelLost("channel closed"), True),
        (ConnectionResetError(), True),
        (aiormq.exceptions.ChannelInvalidStateError("closed"), True),
        (aiormq.exceptions.ChannelNotFoundEntity("no queue"), False),
        (aiormq.exceptions.ChannelPreconditionFailed("other arguments"), False),
        (aiormq.exceptions.ChannelAccessRefused("no permission"), False),
        (ValueError("a bug"), False),
    ],
)
def test_only_a_lost_channel_or_connection_means_consume_elsewhere(
    error: BaseException, lost: bool
) -> None:
    assert connection_lost(error) is lost
