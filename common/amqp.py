"""RabbitMQ topology and the errors of a lost broker (aio-pika).

Each consumer service owns its queues: per data type a durable quorum queue
``{prefix}-{service}-{type}`` bound to the producer's fanout exchange ``{prefix}-{type}``,
with a delivery limit and its own dead-letter exchange ``{prefix}-{service}-dlx`` routing
to ``{prefix}-{service}-{type}-dlq``. The consumer dead-letters bad input itself
(:mod:`common.settling`); the broker's own dead-lettering (delivery limit) is only a
backstop for messages that crash the process again and again.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractQueue,
)

from common.records import DataType

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
        """Messages waiting in ``data_type``'s dead-letter queue (read from the broker).

        The queue and its binding are declared again on the way: one an operator deleted
        to empty it is back, and dead letters have somewhere to go again."""
        queue = self.dead_letter_queues[data_type]
        declared = await queue.declare(timeout=10)
        await queue.bind(self.dead_letter_exchange, routing_key=data_type.value, timeout=10)
        return declared.message_count or 0


async def declare_topology(
    channel: AbstractChannel,
    names: Names,
    *,
    delivery_limit: int,
) -> Topology:
    """Declare (idempotently) the exchanges, queues and dead-letter path of one service."""
    dlx = await channel.declare_exchange(
        names.dead_letter_exchange(), aio_pika.ExchangeType.DIRECT, durable=True
    )
    queues = {}
    dlqs = {}
    for data_type in DataType:
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
