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
from collections.abc import Sequence
from dataclasses import dataclass

import aio_pika
import aiormq
import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)

from common.batching import Rejection
from common.records import DataType
from common.retry import backoff_delay
from common.settings import redact_url

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


async def connect(urls: Sequence[str], *, stop: asyncio.Event) -> AbstractRobustConnection | None:
    """Connect to the first broker that answers, retrying with backoff until ``stop`` is set.

    Returns None if stopped first. The connection is robust: after a broker restart it
    reconnects and restores its channels, queues and consumers by itself.
    """
    attempt = 0
    while not stop.is_set():
        for url in urls:
            try:
                return await aio_pika.connect_robust(url, timeout=10)
            except (aio_pika.exceptions.AMQPConnectionError, OSError, TimeoutError) as e:
                log.warning("amqp connect failed", url=redact_url(url), error=str(e))
        attempt += 1
        delay = backoff_delay(attempt, base=0.5)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)
    return None


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


class AmqpDelivery:
    """One received message; implements :class:`common.batching.Delivery`."""

    __slots__ = ("_dlx", "_message", "_settled", "data_type")

    def __init__(
        self, message: AbstractIncomingMessage, *, dlx: AbstractExchange, data_type: DataType
    ) -> None:
        self._message = message
        self._dlx = dlx
        self._settled = False
        self.data_type = data_type

    async def settle(self, rejections: Sequence[Rejection]) -> None:
        if self._settled:
            raise RuntimeError("delivery settled twice")
        self._settled = True
        try:
            for rejection in rejections:
                await self._dead_letter(rejection)
            await self._message.ack()
        except SETTLE_ERRORS as e:
            # The channel is gone: the broker will redeliver the message, and the write
            # that follows is idempotent, so nothing is lost or doubled.
            log.warning(
                "settle failed; message will be redelivered",
                data_type=self.data_type.value,
                error=repr(e),
            )

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
