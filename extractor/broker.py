"""Publishing to RabbitMQ with publisher confirms, each message until the broker takes it.

Every message is ``mandatory``, persistent and ``application/json`` on a channel with
publisher confirms and ``on_return_raises``: a message the broker returns (no queue bound)
or nacks is a :class:`PublishFailed`, never a silent loss. The messages awaiting their
confirms are bounded (:mod:`extractor.window`). The producer declares exchanges only.

``url`` may list the nodes of a cluster, comma-separated. When the connection is lost
(its node stopped or died), the publisher goes on through another node
(:mod:`extractor.brokerlink`), and every message that was not confirmed is published
again: some may then arrive twice, which the consumers' idempotent writes absorb. Only
when no node answers within ``confirm_timeout`` does it fail.
"""

from __future__ import annotations

import asyncio
import time

import aio_pika
from aio_pika.abc import AbstractExchange
from aio_pika.exceptions import DeliveryError, PublishError

from common.failover import Clock
from common.lifecycle import AsyncResource
from common.records import DataType
from extractor.brokerlink import PublisherLink, PublishFailed
from extractor.window import ConfirmWindow

__all__ = ["ConfirmingPublisher", "Nacked", "PublishFailed"]

# Lost connections one message may go through before the publisher gives up on it (a
# message the broker closes the connection over, again and again, would loop for ever).
_MAX_ATTEMPTS = 10
_NACK_RETRY_CAP = 2.0  # seconds before publishing a nacked message again, at most


class Nacked(PublishFailed):
    """The broker nacked a message (it did not take it); publishing it again may succeed."""


class ConfirmingPublisher(AsyncResource):
    """Publishes message bodies to the ``{prefix}-{type}`` fanout exchanges, each one again
    after a lost connection or a nack until it is confirmed."""

    def __init__(
        self,
        url: str,
        prefix: str,
        *,
        max_in_flight: int = 512,
        max_in_flight_bytes: int = 64 * 1024 * 1024,
        confirm_timeout: float = 120.0,
        clock: Clock = time.monotonic,
        name: str = "extractor",
    ) -> None:
        self._link = PublisherLink(url, prefix, timeout=confirm_timeout, name=name, clock=clock)
        self._clock = clock
        self._timeout = confirm_timeout
        self._window = ConfirmWindow(max_in_flight=max_in_flight, max_bytes=max_in_flight_bytes)
        self._closed = False

    def exchange_name(self, data_type: DataType) -> str:
        return self._link.exchange_name(data_type)

    async def open(self) -> None:
        """Connect to the first node that answers and declare the four durable fanout exchanges."""
        await self._link.open()

    async def publish(self, data_type: DataType, body: bytes) -> None:
        """Start publishing ``body``; waits only while the window is full.

        Raises the first failure of any earlier message.
        """
        if not self._link.exchanges or self._closed:
            raise RuntimeError("ConfirmingPublisher is not open")
        await self._window.make_room(len(body))
        self._window.add(asyncio.ensure_future(self._publish_one(data_type, body)), len(body))

    async def flush(self) -> None:
        """Wait until every message published so far is confirmed; raise the first failure."""
        await self._window.drain()

    @property
    def in_flight(self) -> int:
        return len(self._window)

    async def close(self) -> None:
        """Let unconfirmed messages settle (within the confirm timeout), then disconnect."""
        if self._closed:
            return
        self._closed = True
        await self._window.abandon(self._timeout)
        await self._link.close()

    async def _publish_one(self, data_type: DataType, body: bytes) -> None:
        """Publish until confirmed: on a new connection after each one lost, and again
        after a nack while the broker still takes messages within ``confirm_timeout``."""
        failovers = nacks = 0
        first_nack = 0.0
        while True:
            generation = self._link.generation
            try:
                await self._publish_on(self._link.exchanges[data_type], body)
                return
            except Nacked as e:
                # A quorum queue whose leader's node died refuses messages until its other
                # members elect a new leader, and a channel may go on refusing after that
                # (seen with RabbitMQ 3.10 in the cluster fault test): after a pause, publish
                # again on a connection to the next node.
                nacks += 1
                first_nack = first_nack or self._clock()
                if self._clock() - first_nack >= self._timeout:
                    raise
                await asyncio.sleep(min(_NACK_RETRY_CAP, 0.05 * 2**nacks))
                await self._link.failover(generation, e)
            except PublishFailed:
                raise
            except asyncio.CancelledError as e:
                task = asyncio.current_task()
                if task is None or task.cancelling():
                    raise  # cancelled by close(), not by the driver's channel closing
                failovers = self._count_failover(failovers, data_type)
                await self._link.failover(generation, e)
            except Exception as e:  # noqa: BLE001 - the driver rejects pending confirms of a
                # closed channel with its close reason, which may be any exception (even a
                # bare Exception); attempts are bounded, so a bug fails after a few rounds.
                failovers = self._count_failover(failovers, data_type)
                await self._link.failover(generation, e)

    def _count_failover(self, failovers: int, data_type: DataType) -> int:
        if failovers + 1 >= _MAX_ATTEMPTS:
            raise PublishFailed(
                f"publishing to {self.exchange_name(data_type)!r} failed on {_MAX_ATTEMPTS} "
                "connections in a row"
            )
        return failovers + 1

    async def _publish_on(self, exchange: AbstractExchange, body: bytes) -> None:
        """One attempt; the broker's refusals are :class:`PublishFailed`, a lost connection
        is what the driver raises."""
        name = exchange.name
        message = aio_pika.Message(
            body,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            content_type="application/json",
        )
        try:
            await exchange.publish(message, routing_key="", mandatory=True, timeout=self._timeout)
        except PublishError as e:
            raise PublishFailed(
                f"the broker returned a message as unroutable ({_reason(e)}): "
                f"no queue is bound to exchange {name!r}; start the consumers first"
            ) from e
        except DeliveryError as e:
            raise Nacked(f"the broker refused (nacked) a message to {name!r}") from e
        except TimeoutError as e:
            raise PublishFailed(
                f"no confirm from the broker within {self._timeout:g} s for {name!r}"
            ) from e


def _reason(error: PublishError) -> str:
    """The broker's reply text of a returned message (``NO_ROUTE``)."""
    return str(error.args[0]) if error.args else "returned"
