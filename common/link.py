"""A consumer's connection to the broker, reopened on any node of the cluster when lost.

A plain ``aio_pika.connect`` connection: when it is lost, the consumer drops its channels,
:meth:`BrokerLink.reconnect` connects to the next node that answers
(:mod:`common.failover`), and the consumer declares and consumes there again. Deliveries
of the lost connection are never settled on the new one: the broker redelivers them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence

import aio_pika
import aiormq
import structlog
from aio_pika.abc import AbstractConnection

from common.amqp import CONNECT_ERRORS, SETTLE_ERRORS
from common.failover import Clock, NodeRing, node_of, open_any
from common.inbound import ChannelLost
from common.lifecycle import AsyncResource
from common.waiting import stoppable_sleep, wait_for_server

log = structlog.get_logger(__name__)

_CONNECT_TIMEOUT = 10.0
_CLOSE_TIMEOUT = 10.0


class BrokerLink(AsyncResource):
    """The current connection to one of ``urls``; :meth:`reconnect` after it is lost."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        stop: asyncio.Event,
        clock: Clock = time.monotonic,
    ) -> None:
        self._ring = NodeRing(urls)
        self._stop = stop
        self._clock = clock
        self._connection: AbstractConnection | None = None
        self._lost_at: float | None = None

    @property
    def connection(self) -> AbstractConnection:
        if self._connection is None:
            raise RuntimeError("BrokerLink is not connected")
        return self._connection

    @property
    def connected(self) -> bool:
        return self._connection is not None and self._lost_at is None

    @property
    def node(self) -> str | None:
        """``host:port`` of the node in use (for logs and health)."""
        return None if self._ring.current is None else node_of(self._ring.current)

    async def connect(self) -> bool:
        """Connect to the first node that answers (each attempt tries every node once, the
        one after the node lost first), waiting out outages; False if stopped first."""
        connection = await wait_for_server(
            "rabbitmq", self._one_round, errors=(ConnectionError,), stop=self._stop
        )
        if connection is None:
            return False
        if self._lost_at is not None:
            log.info(
                "amqp resumed", node=self.node, after_s=round(self._clock() - self._lost_at, 2)
            )
        self._connection, self._lost_at = connection, None
        return True

    async def reconnect(self) -> bool:
        """Drop the lost connection and connect to a node again (the next one first)."""
        if self._lost_at is None:
            self._lost_at = self._clock()
        log.warning("amqp connection lost", node=self.node)
        await self._drop()
        return await self.connect()

    async def close(self) -> None:
        await self._drop()

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(*CONNECT_ERRORS, aio_pika.exceptions.AMQPError, RuntimeError):
                await asyncio.wait_for(connection.close(), timeout=_CLOSE_TIMEOUT)

    async def _one_round(self) -> AbstractConnection:
        connection = await open_any(
            self._ring,
            self._open_one,
            errors=CONNECT_ERRORS,
            sleep=self._sleep,
            clock=self._clock,
            give_up_after=0,
        )
        if connection is None:
            nodes = ", ".join(node_of(url) for url in self._ring.urls)
            raise ConnectionError(f"no node answered: {nodes}")
        return connection

    async def _open_one(self, url: str) -> AbstractConnection:
        return await aio_pika.connect(url, timeout=_CONNECT_TIMEOUT)

    async def _sleep(self, seconds: float) -> bool:
        return not await stoppable_sleep(seconds, self._stop)


# What the broker answers to a declaration or a consumer it will never accept (arguments
# that differ from the queue's, no permission): every node gives the same answer again.
REFUSALS = (
    aiormq.exceptions.ChannelPreconditionFailed,
    aiormq.exceptions.ChannelAccessRefused,
)


def connection_lost(error: BaseException) -> bool:
    """Whether a consuming task ended because its channel or connection went (consume
    again elsewhere), not because the broker refused the queue (a missing queue, a refusal:
    fatal)."""
    if isinstance(error, (aiormq.exceptions.ChannelNotFoundEntity, *REFUSALS)):
        return False
    return isinstance(error, (ChannelLost, *SETTLE_ERRORS))
