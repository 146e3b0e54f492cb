"""AckWindow: multiple-acks only ever cover a run of settled deliveries (common.settling)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import cast

import aiormq
import structlog.testing

from common.inbound import Inbound
from common.records import DataType
from common.settling import AckWindow


@dataclass
class FakeMessage:
    """Just what the window reads of a delivery: its channel, whether that is open, its
    tag, and ack()."""

    channel: object
    delivery_tag: int
    acks: list[tuple[int, bool]] = field(default_factory=list)
    fail: bool = False
    closed: bool = False

    @property
    def is_open(self) -> bool:
        return not self.closed

    async def ack(self, *, multiple: bool = False) -> None:
        if self.fail:
            raise aiormq.exceptions.ChannelInvalidStateError("closed")
        self.acks.append((self.delivery_tag, multiple))


Acks = list[tuple[int, bool]]


def fresh() -> tuple[AckWindow, Acks]:
    return AckWindow(DataType.ARTISTS), []


def received(window: AckWindow, channel: object, tags: range, log: Acks) -> list[FakeMessage]:
    messages = [FakeMessage(channel, tag, acks=log) for tag in tags]
    for message in messages:
        window.received(as_incoming(message))
    return messages


def as_incoming(message: FakeMessage) -> Inbound:
    return cast(Inbound, message)


async def settle(window: AckWindow, *messages: FakeMessage, requeued: bool = False) -> None:
    for message in messages:
        window.settled(as_incoming(message), requeued=requeued)
    await window.flush()


async def test_a_batch_settled_in_order_costs_one_multiple_ack() -> None:
    window, log = fresh()
    messages = received(window, "ch", range(1, 501), log)
    await settle(window, *messages)
    assert log == [(500, True)]


async def test_a_delivery_settled_early_waits_for_those_before_it() -> None:
    window, log = fresh()
    m1, m2, m3, m4 = received(window, "ch", range(1, 5), log)
    await settle(window, m3, m4)
    assert log == []
    await settle(window, m1)
    assert log == [(1, True)]
    await settle(window, m2)
    assert log == [(1, True), (4, True)]


async def test_requeued_deliveries_are_passed_over_never_acked() -> None:
    window, log = fresh()
    m1, m2, m3 = received(window, "ch", range(1, 4), log)
    await settle(window, m1)
    await settle(window, m2, requeued=True)
    assert log == [(1, True)]  # the run ends on a requeued one: nothing more to ack
    await settle(window, m3)
    assert log == [(1, True), (3, True)]


async def test_a_new_channel_forgets_the_old_ones_deliveries() -> None:
    window, log = fresh()
    old = received(window, "old", range(1, 3), log)
    new = received(window, "new", range(1, 3), log)
    await settle(window, *old)  # the broker requeued these when "old" closed
    assert log == []
    await settle(window, *new)
    assert log == [(2, True)]


async def test_an_ack_on_a_closed_channel_is_logged_not_raised() -> None:
    window, log = fresh()
    (message,) = received(window, "ch", range(1, 2), log)
    message.fail = True
    with structlog.testing.capture_logs() as lines:
        await settle(window, message)
    assert log == []
    assert [line["event"] for line in lines] == ["ack failed; messages will be redelivered"]


async def test_deliveries_of_a_closed_channel_are_passed_over_without_error() -> None:
    window, log = fresh()
    m1, m2 = received(window, "ch", range(1, 3), log)
    m1.closed = m2.closed = True  # the connection dropped; the broker requeued both
    await settle(window, m1, m2)
    late = FakeMessage("ch", 3, acks=log, closed=True)
    window.received(as_incoming(late))
    await settle(window, late)
    assert log == []


async def test_a_settled_run_is_acked_once_however_often_it_is_flushed() -> None:
    window, log = fresh()
    await window.flush()  # nothing received yet
    (message,) = received(window, "ch", range(1, 2), log)
    await settle(window, message)
    await window.flush()
    await window.flush()
    assert log == [(1, True)]


async def test_a_cancelled_waiter_leaves_the_acks_in_progress_to_finish() -> None:
    """A reader stopped while it waits for its acks (mid prefetch resize) must not cancel
    them: the shutdown flush after it waits for the same acks and must not raise."""
    window, log = fresh()
    (message,) = received(window, "ch", range(1, 2), log)
    window.settled(as_incoming(message))
    waiter = asyncio.create_task(window.flush())
    await asyncio.sleep(0)  # the waiter is now blocked on the acks in progress
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    await window.flush()
    assert log == [(1, True)]
