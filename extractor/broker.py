"""Publishing to RabbitMQ with publisher confirms and a bounded window of unconfirmed messages.

Every message is ``mandatory``, persistent and ``application/json`` on a channel with
publisher confirms and ``on_return_raises``: a message the broker returns (no queue bound)
or nacks is a :class:`PublishFailed`, never a silent loss. Up to ``max_in_flight`` messages
(and ``max_in_flight_bytes`` of bodies) await their confirms at once, which is what makes
publishing fast; the bound keeps memory flat. The producer declares exchanges only.
"""

from __future__ import annotations

import asyncio

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange
from aio_pika.exceptions import AMQPError, DeliveryError, PublishError

from common.lifecycle import AsyncResource
from common.records import DataType
from common.settings import redact_url


class PublishFailed(Exception):
    """The broker did not take a message (or could not be reached); ``str(e)`` is one line."""


class ConfirmingPublisher(AsyncResource):
    """Publishes message bodies to the ``{prefix}-{type}`` fanout exchanges, confirmed."""

    def __init__(
        self,
        url: str,
        prefix: str,
        *,
        max_in_flight: int = 512,
        max_in_flight_bytes: int = 64 * 1024 * 1024,
        confirm_timeout: float = 120.0,
    ) -> None:
        self._url = url
        self._prefix = prefix
        self._max_in_flight = max(1, max_in_flight)
        self._max_bytes = max(1, max_in_flight_bytes)
        self._timeout = confirm_timeout
        self._connection: AbstractConnection | None = None
        self._exchanges: dict[DataType, AbstractExchange] = {}
        self._in_flight: dict[asyncio.Future[None], int] = {}
        self._bytes = 0
        self._failure: PublishFailed | None = None
        self._settled_event = asyncio.Event()  # set whenever a message settles
        self._closed = False

    def exchange_name(self, data_type: DataType) -> str:
        return f"{self._prefix}-{data_type.value}"

    async def open(self) -> None:
        """Connect and declare the four durable fanout exchanges."""
        where = redact_url(self._url)
        try:
            self._connection = await aio_pika.connect(
                self._url, timeout=10, client_properties={"connection_name": "extractor"}
            )
        except (AMQPError, OSError, TimeoutError) as e:
            raise PublishFailed(f"cannot connect to RabbitMQ at {where}: {e}") from e
        try:
            channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
            await self._declare(channel)
        except (AMQPError, OSError, TimeoutError) as e:
            raise PublishFailed(f"cannot declare the exchanges on {where}: {e}") from e

    async def _declare(self, channel: AbstractChannel) -> None:
        for data_type in DataType:
            self._exchanges[data_type] = await channel.declare_exchange(
                self.exchange_name(data_type), aio_pika.ExchangeType.FANOUT, durable=True
            )

    async def publish(self, data_type: DataType, body: bytes) -> None:
        """Start publishing ``body``; waits only while the window is full.

        Raises the first failure of any earlier message.
        """
        if not self._exchanges or self._closed:
            raise RuntimeError("ConfirmingPublisher is not open")
        await self._make_room(len(body))
        task = asyncio.ensure_future(self._publish_one(data_type, body))
        self._in_flight[task] = len(body)
        self._bytes += len(body)
        task.add_done_callback(self._settled)

    async def flush(self) -> None:
        """Wait until every message published so far is confirmed; raise the first failure."""
        while self._in_flight:
            await self._next_settlement()
        self._raise_failure()

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    async def close(self) -> None:
        """Let unconfirmed messages settle (within the confirm timeout), then disconnect."""
        if self._closed:
            return
        self._closed = True
        if self._in_flight:
            await asyncio.wait(list(self._in_flight), timeout=self._timeout)
            for task in list(self._in_flight):
                task.cancel()
            if self._in_flight:
                await asyncio.wait(list(self._in_flight))
        if self._connection is not None:
            await self._connection.close()

    async def _make_room(self, size: int) -> None:
        self._raise_failure()
        while self._in_flight and (
            len(self._in_flight) >= self._max_in_flight or self._bytes + size > self._max_bytes
        ):
            await self._next_settlement()
            self._raise_failure()

    async def _next_settlement(self) -> None:
        """Wait until at least one more in-flight message settles (O(1), whatever the window)."""
        self._settled_event.clear()
        await self._settled_event.wait()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _settled(self, task: asyncio.Future[None]) -> None:
        self._bytes -= self._in_flight.pop(task, 0)
        self._settled_event.set()
        if task.cancelled():
            return
        error = task.exception()
        if error is not None and self._failure is None:
            self._failure = (
                error
                if isinstance(error, PublishFailed)
                else PublishFailed(f"publishing failed: {error!r}")
            )

    async def _publish_one(self, data_type: DataType, body: bytes) -> None:
        name = self.exchange_name(data_type)
        message = aio_pika.Message(
            body,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            content_type="application/json",
        )
        try:
            await self._exchanges[data_type].publish(
                message, routing_key="", mandatory=True, timeout=self._timeout
            )
        except PublishError as e:
            raise PublishFailed(
                f"the broker returned a message as unroutable ({_reason(e)}): "
                f"no queue is bound to exchange {name!r}; start the consumers first"
            ) from e
        except DeliveryError as e:
            raise PublishFailed(f"the broker refused (nacked) a message to {name!r}") from e
        except TimeoutError as e:
            raise PublishFailed(
                f"no confirm from the broker within {self._timeout:g} s for {name!r}"
            ) from e
        except (AMQPError, OSError) as e:
            raise PublishFailed(f"publishing to {name!r} failed: {e!r}") from e


def _reason(error: PublishError) -> str:
    """The broker's reply text of a returned message (``NO_ROUTE``)."""
    return str(error.args[0]) if error.args else "returned"
