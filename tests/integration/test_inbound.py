"""common.inbound on the real broker: what a delivery carries, settlement, a consumer's
cancel, a lost connection and a queue deleted under it."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aio_pika
import pytest

from common.inbound import ChannelLost, ConsumerLost, Inbound, QueueConsumer
from tests import servers
from tests.amqp_admin import close_connections
from tests.support import eventually

pytestmark = pytest.mark.integration

Got = list[Inbound | ConsumerLost | ChannelLost]


@pytest.fixture
async def connection(exchange_prefix: str) -> AsyncIterator[aio_pika.abc.AbstractConnection]:
    """A connection named after the test (plain, like the services' own)."""
    url = f"{servers.AMQP_URL}?name={exchange_prefix}-conn"
    connection = await aio_pika.connect(url, timeout=5)
    async with connection:
        yield connection


async def queue_on(
    connection: aio_pika.abc.AbstractConnection, name: str
) -> aio_pika.abc.AbstractChannel:
    channel = await connection.channel()
    await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
    return channel


async def publish(channel: aio_pika.abc.AbstractChannel, queue: str, *bodies: bytes) -> None:
    for body in bodies:
        message = aio_pika.Message(body, headers={"h": "v"}, content_type="application/json")
        await channel.default_exchange.publish(message, routing_key=queue)


@dataclass
class Queue:
    """The test's queue (a quorum queue, as the services declare) and a channel to it."""

    name: str
    channel: aio_pika.abc.AbstractChannel


@pytest.fixture
async def queue(connection: aio_pika.abc.AbstractConnection, exchange_prefix: str) -> Queue:
    name = f"{exchange_prefix}-q"
    return Queue(name, await queue_on(connection, name))


async def started(
    connection: aio_pika.abc.AbstractConnection, queue: str, *, prefetch: int = 0
) -> tuple[aio_pika.abc.AbstractChannel, Got, QueueConsumer]:
    """A consumer of ``queue`` on a channel of its own, recording what it is handed."""
    channel = await connection.channel()
    if prefetch:
        await channel.set_qos(prefetch_count=prefetch)
    got: Got = []
    consumer = QueueConsumer(channel, queue, got.append)
    await consumer.start()
    return channel, got, consumer


async def ready(channel: aio_pika.abc.AbstractChannel, queue: str) -> int:
    """Messages ready in ``queue`` (asked of the broker: aio-pika answers a passive
    declare of a queue its channel declared before from what it remembers)."""
    underlay = await channel.get_underlay_channel()
    declared = await underlay.queue_declare(queue, passive=True)
    return declared.message_count or 0


async def test_a_delivery_carries_body_and_properties_and_settles(
    connection: aio_pika.abc.AbstractConnection, queue: Queue
) -> None:
    name, channel = queue.name, queue.channel
    await publish(channel, name, b"one")
    _, got, consumer = await started(connection, name)
    await eventually(lambda: len(got) == 1, what="delivered")
    first = got[0]
    assert isinstance(first, Inbound)
    assert (first.body, first.headers, first.content_type) == (
        b"one",
        {"h": "v"},
        "application/json",
    )
    assert not first.redelivered
    assert first.is_open
    await first.nack(requeue=True)
    await eventually(lambda: len(got) == 2, what="redelivered")
    again = got[1]
    assert isinstance(again, Inbound)
    assert again.body == b"one"
    assert again.redelivered
    await again.ack()
    await consumer.cancel()
    await consumer.cancel()  # idempotent
    assert await ready(channel, name) == 0


async def test_bodies_of_every_size_arrive_whole_and_in_order(
    connection: aio_pika.abc.AbstractConnection, queue: Queue
) -> None:
    """Bodies empty, one frame, just under and over the broker's frame size, and many
    frames long."""
    frame_max = connection.transport.connection.connection_tune.frame_max
    sizes = [0, 1, 3200, frame_max - 8, frame_max - 7, frame_max + 1, 3_000_000]
    rng = random.Random(3)
    bodies = [rng.randbytes(size) for size in sizes] * 2
    await publish(queue.channel, queue.name, *bodies)
    _, got, consumer = await started(connection, queue.name, prefetch=4)
    for n in range(1, len(bodies) + 1):
        await eventually(lambda n=n: len(got) >= n, what=f"delivery {n}")
        message = got[n - 1]
        assert isinstance(message, Inbound)
        await message.ack()
    await consumer.cancel()
    assert [m.body for m in got if isinstance(m, Inbound)] == bodies
    assert {(m.content_type, str(m.headers)) for m in got if isinstance(m, Inbound)} == {
        ("application/json", "{'h': 'v'}")
    }


async def test_cancel_returns_after_every_delivery_before_it_was_passed_on(
    connection: aio_pika.abc.AbstractConnection, queue: Queue
) -> None:
    name, channel = queue.name, queue.channel
    await publish(channel, name, *(str(i).encode() for i in range(200)))
    consuming, got, consumer = await started(connection, name, prefetch=50)
    await eventually(lambda: len(got) >= 10, what="deliveries")
    await consumer.cancel()
    passed = len(got)
    await ready(consuming, name)  # a round trip on that channel: nothing was still on its way
    assert len(got) == passed
    bodies = [m.body for m in got if isinstance(m, Inbound)]
    assert bodies == [str(i).encode() for i in range(passed)]  # in order
    last = got[-1]
    assert isinstance(last, Inbound)
    await last.ack(multiple=True)
    await consuming.close()
    await eventually(lambda: _ready_is(channel, name, 200 - passed), what="rest still queued")


async def _ready_is(channel: aio_pika.abc.AbstractChannel, queue: str, n: int) -> bool:
    return await ready(channel, queue) == n


async def test_a_dropped_connection_ends_the_consumer_with_channel_lost(
    connection: aio_pika.abc.AbstractConnection, exchange_prefix: str
) -> None:
    name = f"{exchange_prefix}-q"
    publisher = await aio_pika.connect(servers.AMQP_URL, timeout=5)
    async with publisher:
        channel = await queue_on(publisher, name)
        _, got, consumer = await started(connection, name)
        await publish(channel, name, b"before")
        await eventually(lambda: len(got) == 1, what="first delivery")
        assert await close_connections(f"{exchange_prefix}-conn") == 1
        before = got[0]
        assert isinstance(before, Inbound)
        await eventually(lambda: len(got) == 2, what="channel lost")
        assert isinstance(got[1], ChannelLost)
        assert not before.is_open  # its tag is void: the broker requeued it
        await consumer.cancel()  # a lost consumer's cancel is a no-op
        await eventually(lambda: _ready_is(channel, name, 1), what="requeued, unacked")


async def test_a_queue_deleted_under_the_consumer_ends_it_with_a_reason(
    connection: aio_pika.abc.AbstractConnection, queue: Queue
) -> None:
    name, channel = queue.name, queue.channel
    _, got, consumer = await started(connection, name)
    await channel.queue_delete(name)
    await eventually(lambda: len(got) == 1, what="consumer lost")
    lost = got[0]
    assert isinstance(lost, ConsumerLost)
    assert "cancelled the consumer" in str(lost)
    assert name in str(lost)
    await consumer.cancel()  # a lost consumer's cancel is a no-op


async def test_a_detached_consumer_passes_nothing_on(
    connection: aio_pika.abc.AbstractConnection, queue: Queue
) -> None:
    name, channel = queue.name, queue.channel
    consuming, got, consumer = await started(connection, name)
    consumer.detach()
    await publish(channel, name, b"x")
    await eventually(lambda: _unacked_is(consuming, name), what="delivered to the channel")
    assert got == []
    await consuming.close()
    await eventually(lambda: _ready_is(channel, name, 1), what="requeued on close")


async def _unacked_is(channel: aio_pika.abc.AbstractChannel, queue: str) -> bool:
    """Whether the one message left the queue (it went to the detached consumer)."""
    return await ready(channel, queue) == 0
