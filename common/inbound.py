"""Consuming one queue on aiormq's channel, below aio-pika's message objects.

aio-pika's ``IncomingMessage`` (a checking ``__setattr__``) and its task per delivery cost
a large share of a consumer's time with one-record messages (docs/performance.md); an
:class:`Inbound` carries only what the runtime reads. When the channel closes the callback
gets a :class:`ChannelLost`: the caller consumes again on a new connection (its deliveries
are void, the broker requeued them). A consumer the broker cancels (queue deleted) gets a
:class:`ConsumerLost`: the caller stops, since consuming again would fail the same way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import aiormq
import structlog
from aio_pika.abc import AbstractChannel as Channel
from aiormq.abc import AbstractChannel, DeliveredMessage
from pamqp import commands

log = structlog.get_logger(__name__)

# What cancelling raises when the channel is already gone (the broker dropped the consumer).
_LOST = (aiormq.exceptions.AMQPError, ConnectionError, TimeoutError)


class Inbound:
    """One delivery: its body, the properties the runtime reads, and its settlement."""

    __slots__ = ("body", "channel", "content_type", "delivery_tag", "headers", "redelivered")

    def __init__(self, message: DeliveredMessage) -> None:
        deliver = message.delivery
        properties = message.header.properties
        self.body: bytes = message.body
        self.channel: AbstractChannel = message.channel
        self.delivery_tag: int = getattr(deliver, "delivery_tag", 0) or 0
        self.redelivered: bool = bool(getattr(deliver, "redelivered", False))
        self.headers: dict[str, Any] | None = properties.headers
        self.content_type: str | None = properties.content_type

    @property
    def is_open(self) -> bool:
        """Whether it can still be settled (its channel is open)."""
        return not self.channel.is_closed

    async def ack(self, *, multiple: bool = False) -> None:
        await self.channel.basic_ack(self.delivery_tag, multiple=multiple)

    async def nack(self, *, requeue: bool = True) -> None:
        await self.channel.basic_nack(self.delivery_tag, requeue=requeue)


class ConsumerLost(Exception):
    """The broker ended the consumer for good; ``str(e)`` says why."""


class ChannelLost(Exception):
    """The consumer's channel closed (its connection was lost): consume again elsewhere."""


OnMessage = Callable[[Inbound | ConsumerLost | ChannelLost], None]


class QueueConsumer:
    """Passes ``on_message`` each delivery of ``queue`` in order, and last a
    :class:`ConsumerLost` or :class:`ChannelLost` (unless :meth:`cancel` came first)."""

    def __init__(self, channel: Channel, queue: str, on_message: OnMessage) -> None:
        self._channel = channel
        self._queue = queue
        self._on_message = on_message
        self._underlay: AbstractChannel | None = None
        self._tag: str | None = None
        self._active = False

    async def start(self) -> None:
        self._active = True
        self._channel.close_callbacks.add(self._closed)
        underlay = await self._channel.get_underlay_channel()
        underlay.on_consumer_cancel_callbacks.add(self._cancelled)
        self._underlay = underlay
        ok = await underlay.basic_consume(self._queue, self._deliver)
        self._tag = ok.consumer_tag

    async def cancel(self) -> None:
        """Stop consuming (idempotent); deliveries before the broker's cancel-ok have been
        passed to ``on_message`` when it returns."""
        if not self._active:
            return
        underlay, tag = self._underlay, self._tag
        self._stop()
        if underlay is not None and tag is not None and not underlay.is_closed:
            with contextlib.suppress(*_LOST):  # lost: the broker dropped the consumer
                await underlay.basic_cancel(tag)

    def detach(self) -> None:
        """Pass nothing on any more, at once (shutdown): later deliveries stay unacked and
        the broker requeues them when the channel closes."""
        self._stop()
        self._on_message = _drop

    def _stop(self) -> None:
        """No callbacks left on the channels: a resized prefetch reuses the channel."""
        self._active = False
        self._channel.close_callbacks.discard(self._closed)
        if self._underlay is not None:
            self._underlay.on_consumer_cancel_callbacks.discard(self._cancelled)
        self._underlay = self._tag = None

    async def _deliver(self, message: DeliveredMessage) -> None:
        self._on_message(Inbound(message))

    def _closed(self, _channel: object, error: BaseException | None) -> None:
        if self._active:
            self._active = False
            self._on_message(ChannelLost(f"channel of {self._queue} closed: {error!r}"))

    def _cancelled(self, frame: commands.Basic.Cancel | commands.Basic.CancelOk) -> None:
        if (
            self._active
            and isinstance(frame, commands.Basic.Cancel)
            and (frame.consumer_tag == self._tag)
        ):
            self._lost(f"the broker cancelled the consumer of {self._queue} (queue deleted?)")

    def _lost(self, reason: str) -> None:
        log.error("consumer lost", queue=self._queue, reason=reason)
        # Not _stop(): this may run inside aiormq's loop over the cancel callbacks.
        self._active = False
        self._on_message(ConsumerLost(reason))


def _drop(_message: Inbound | ConsumerLost | ChannelLost) -> None:
    """The callback of a detached consumer."""
