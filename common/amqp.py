"""RabbitMQ topology, connection and settlement (aio-pika).

Each consumer service owns its queues: per data type a durable quorum queue
``{prefix}-{service}-{type}`` bound to the producer's fanout exchange ``{prefix}-{type}``,
with a delivery limit and its own dead-letter exchange ``{prefix}-{service}-dlx`` routing
to ``{prefix}-{service}-{type}-dlq``. The consumer dead-letters bad input itself, by a
confirmed publish carrying the reason in the ``x-dead-letter-reason`` header, then acks;
the broker's own dead-lettering (delivery limit) is only a backstop for messages that
crash the process again and again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import aio_pika
import aiormq
import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractQueue,
)

from common.batching import Rejection
from common.inbound import Inbound
from common.records import DataType

log = structlog.get_logger(__name__)

REASON_HEADER = "x-dead-letter-reason"
# What a lost channel or connection raises when settling; the message is then redelivered.
SETTLE_ERRORS = (
    aio_pika.exceptions.ChannelInvalidStateError,
    aio_pika.exceptions.AMQPError,
    aiormq.exceptions.AMQPError,
    ConnectionError,
    asyncio.TimeoutError,
)
# What connecting to a broker that is not (yet) there raises.
CONNECT_ERRORS = (aio_pika.exceptions.AMQPConnectionError, OSError, TimeoutError)


@dataclass(frozen=True, slots=True)
class Names:
    prefix: str
    service: str

    def exchange(self, data_type: DataType) -> str:
        return f"{self.prefix}-{data_type.value}"

    def queue(self, data_type: DataType) -> str:
        return f"{self.prefix}-{self.service}-{data_type.value}"

    def dead_letter_exchange(self) -> str:
        return f"{self.prefix}-{self.service}-dlx"

    def dead_letter_queue(self, data_type: DataType) -> str:
        return f"{self.prefix}-{self.service}-{data_type.value}-dlq"


@dataclass(frozen=True, slots=True)
class Topology:
    queues: dict[DataType, AbstractQueue]
    dead_letter_exchange: AbstractExchange
    dead_letter_queues: dict[DataType, AbstractQueue]

    async def dead_letter_depth(self, data_type: DataType) -> int:
        """Messages waiting in ``data_type``'s dead-letter queue (read from the broker)."""
        declared = await self.dead_letter_queues[data_type].declare(timeout=10)
        return declared.message_count or 0


async def declare_topology(
    channel: AbstractChannel,
    names: Names,
    *,
    delivery_limit: int,
    data_types: Sequence[DataType] = tuple(DataType),
) -> Topology:
    """Declare (idempotently) the exchanges, queues and dead-letter path of one service."""
    dlx = await channel.declare_exchange(
        names.dead_letter_exchange(), aio_pika.ExchangeType.DIRECT, durable=True
    )
    queues = {}
    dlqs = {}
    for data_type in data_types:
        exchange = await channel.declare_exchange(
            names.exchange(data_type), aio_pika.ExchangeType.FANOUT, durable=True
        )
        dlq = await channel.declare_queue(
            names.dead_letter_queue(data_type),
            durable=True,
            arguments={"x-queue-type": "quorum"},
        )
        await dlq.bind(dlx, routing_key=data_type.value)
        dlqs[data_type] = dlq
        queue = await channel.declare_queue(
            names.queue(data_type),
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-delivery-limit": delivery_limit,
                "x-dead-letter-exchange": names.dead_letter_exchange(),
                "x-dead-letter-routing-key": data_type.value,
            },
        )
        await queue.bind(exchange, routing_key="")
        queues[data_type] = queue
    return Topology(queues, dlx, dlqs)


class AckWindow:
    """Acknowledges one consuming channel's deliveries in runs, with multiple-acks.

    ``ack(multiple=True)`` on tag N settles every delivery up to N on the channel, so the
    window acks only up to the end of the longest run of *received* deliveries that are
    all settled: a delivery settled out of order (its batch committed first) waits for
    the ones before it. Every delivery must be :meth:`received` in arrival order and then
    settled exactly once; a batch of 500 one-record messages then costs one ack frame
    instead of 500, for the consumer and for the broker. After a reconnect (a new
    channel, whose tags start again) the old channel's deliveries are forgotten: the
    broker has already requeued them.
    """

    def __init__(self, data_type: DataType) -> None:
        self._data_type = data_type
        self._channel: object = None
        self._order: deque[Inbound] = deque()
        # Settled delivery tags, each mapped to whether it is to be acked (not requeued).
        self._settled: dict[int, bool] = {}
        self._flushing: asyncio.Task[None] | None = None

    def received(self, message: Inbound) -> None:
        channel = _channel_of(message)
        if channel is None:
            return  # closed already: the broker requeued it; its ack would fail anyway
        if channel is not self._channel:
            self._channel = channel
            self._order.clear()
            self._settled.clear()
        self._order.append(message)

    def settled(self, message: Inbound, *, requeued: bool = False) -> None:
        """Mark ``message`` settled; the ack goes out once the loop is next free.

        ``requeued``: it was already returned to the broker (nacked), so the window passes
        over it without acking it (a multiple-ack covers only outstanding deliveries).
        """
        channel = _channel_of(message)
        if channel is None or channel is not self._channel:
            return  # a closed channel's delivery: the broker redelivers it
        self._settled[message.delivery_tag] = not requeued
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.get_running_loop().create_task(self._flush())

    async def flush(self) -> None:
        """Wait for the acks in progress (idempotent); used before closing the channel."""
        if self._flushing is not None:
            await self._flushing

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # let the rest of a batch's settlements mark themselves
        while (last := self._advance()) is not None:
            try:
                await last.ack(multiple=True)
            except SETTLE_ERRORS as e:
                # The channel is gone: the broker will redeliver these messages, and the
                # writes that follow are idempotent, so nothing is lost or doubled.
                log.warning(
                    "ack failed; messages will be redelivered",
                    data_type=self._data_type.value,
                    error=repr(e),
                )
                return

    def _advance(self) -> Inbound | None:
        """Drop the settled run at the front; the last delivery of it to ack, if any."""
        last = None
        while self._order and (tag := self._order[0].delivery_tag) in self._settled:
            message = self._order.popleft()
            if self._settled.pop(tag):
                last = message
        return last


def _channel_of(message: Inbound) -> object | None:
    """The channel ``message`` arrived on, or None once that channel is closed."""
    return message.channel if message.is_open else None


class AmqpDelivery:
    """One received message; implements :class:`common.batching.Delivery`."""

    __slots__ = ("_acks", "_dlx", "_message", "_settled", "data_type")

    def __init__(
        self,
        message: Inbound,
        *,
        dlx: AbstractExchange,
        data_type: DataType,
        acks: AckWindow,
    ) -> None:
        self._message = message
        self._dlx = dlx
        self._acks = acks
        self._settled = False
        self.data_type = data_type

    async def settle(self, rejections: Sequence[Rejection]) -> None:
        if self._settled:
            raise RuntimeError("delivery settled twice")
        self._settled = True
        try:
            for rejection in rejections:
                await self._dead_letter(rejection)
        except SETTLE_ERRORS as e:
            # The dead-letter publish failed: return the message to the queue, whose
            # redelivery repeats the (idempotent) write and the dead-lettering. If the
            # consuming channel is gone too, the broker has requeued it already.
            log.warning(
                "settle failed; message will be redelivered",
                data_type=self.data_type.value,
                error=repr(e),
            )
            with contextlib.suppress(*SETTLE_ERRORS):
                await self._message.nack(requeue=True)
            self._acks.settled(self._message, requeued=True)
            return
        self._acks.settled(self._message)

    async def _dead_letter(self, rejection: Rejection) -> None:
        body = rejection.body if rejection.body is not None else self._message.body
        headers = dict(self._message.headers or {})
        headers[REASON_HEADER] = rejection.reason[:1000]
        headers["x-original-queue-type"] = self.data_type.value
        await self._dlx.publish(
            aio_pika.Message(
                body,
                headers=headers,
                content_type=self._message.content_type,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=self.data_type.value,
            mandatory=True,
        )
