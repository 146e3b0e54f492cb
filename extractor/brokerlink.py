"""The extractor's connection to any node of the broker cluster, with its exchanges.

``url`` may list the nodes of a cluster, comma-separated. :meth:`PublisherLink.failover`
replaces a lost connection by one to the next node that answers (:mod:`common.failover`)
and declares the exchanges there; the publisher then publishes again what was not
confirmed. Only when no node answers within ``timeout`` does it fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import aio_pika
import structlog
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange
from aio_pika.exceptions import AMQPError

from common.failover import Clock, NodeRing, open_any
from common.lifecycle import AsyncResource
from common.records import DataType
from common.settings import redact_url

log = structlog.get_logger("extractor")

# What opening or closing a connection raises when its node is down or going.
LOST = (AMQPError, OSError, RuntimeError)
Opened = tuple[AbstractConnection, dict[DataType, AbstractExchange]]


class PublishFailed(Exception):
    """The broker did not take a message (or could not be reached); ``str(e)`` is one line."""


class PublisherLink(AsyncResource):
    """A confirming channel on one node, its four fanout exchanges, and their replacement."""

    def __init__(
        self,
        url: str,
        prefix: str,
        *,
        timeout: float,
        name: str = "extractor",
        clock: Clock = time.monotonic,
    ) -> None:
        self._where = redact_url(url)
        self._ring = NodeRing([u.strip() for u in url.split(",") if u.strip()])
        self._prefix = prefix
        self._timeout = timeout
        self._name = name  # the connection's name, as the broker's management lists it
        self._clock = clock
        self._connection: AbstractConnection | None = None
        self.exchanges: dict[DataType, AbstractExchange] = {}
        self.generation = 0  # connections opened so far
        self._reconnecting = asyncio.Lock()
        self._unreachable: PublishFailed | None = None

    def exchange_name(self, data_type: DataType) -> str:
        return f"{self._prefix}-{data_type.value}"

    async def open(self) -> None:
        """Connect to the first node that answers and declare the four durable fanout exchanges."""
        opened = await self._open_any(give_up_after=0)
        if opened is None:
            raise PublishFailed(f"cannot connect to RabbitMQ at {self._where}")
        self._connection, self.exchanges = opened

    async def failover(self, generation: int, error: BaseException) -> None:
        """Replace the connection ``generation`` was published on, unless already done."""
        async with self._reconnecting:
            if self._unreachable is not None:
                raise self._unreachable
            if self.generation != generation:
                return  # another message's failure reconnected already
            log.warning("reconnecting to the broker", reason=repr(error))
            await self.close()
            opened = await self._open_any(give_up_after=self._timeout)
            if opened is None:
                self._unreachable = PublishFailed(
                    f"lost the broker and no node of {self._where} answered "
                    f"within {self._timeout:g} s"
                )
                raise self._unreachable
            self._connection, self.exchanges = opened
            self.generation += 1

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(*LOST):
                await asyncio.wait_for(connection.close(), timeout=5)

    async def _open_any(self, *, give_up_after: float) -> Opened | None:
        return await open_any(
            self._ring,
            self._open_node,
            errors=LOST,
            sleep=_sleep,
            clock=self._clock,
            give_up_after=give_up_after,
        )

    async def _open_node(self, url: str) -> Opened:
        connection = await aio_pika.connect(
            url, timeout=10, client_properties={"connection_name": self._name}
        )
        try:
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            return connection, await self._declare(channel)
        except BaseException:
            with contextlib.suppress(*LOST):
                await connection.close()
            raise

    async def _declare(self, channel: AbstractChannel) -> dict[DataType, AbstractExchange]:
        return {
            data_type: await channel.declare_exchange(
                self.exchange_name(data_type), aio_pika.ExchangeType.FANOUT, durable=True
            )
            for data_type in DataType
        }


async def _sleep(seconds: float) -> bool:
    await asyncio.sleep(seconds)
    return True
