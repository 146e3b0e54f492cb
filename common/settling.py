"""The one place a received message is acked, dead-lettered or returned to its queue.

Each delivery is settled exactly once: its rejections are first published to the
dead-letter exchange (a confirmed, mandatory publish, the reason in
``x-dead-letter-reason``), then it is acked, in runs of multiple-acks (:class:`AckWindow`).
A dead letter the broker returns (its queue was deleted) is sent again once the queue is
declared again. If the dead-letter publish fails it is returned to its queue: the
redelivery repeats the idempotent write and the dead-lettering. A delivery of a channel
that closed is never settled: the broker redelivers it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import deque
from collections.abc import Sequence

import aio_pika
import aiormq
import structlog

from common.amqp import SETTLE_ERRORS, Topology
from common.inbound import Inbound
from common.records import DataType
from common.tickets import Rejection

log = structlog.get_logger(__name__)

REASON_HEADER = "x-dead-letter-reason"


class Settler:
    """Settles the deliveries of one queue received on one channel."""

    def __init__(self, data_type: DataType, topology: Topology) -> None:
        self.data_type = data_type
        self.topology = topology
        self.acks = AckWindow(data_type)

    def received(self, message: Inbound) -> AmqpDelivery:
        """Take ``message`` (in arrival order); settle it through what this returns."""
        self.acks.received(message)
        return AmqpDelivery(message, self)

    async def flush(self) -> None:
        """Wait for the acks in progress (idempotent); used before closing the channel."""
        await self.acks.flush()


class AmqpDelivery:
    """One received message; implements :class:`common.tickets.Delivery`."""

    __slots__ = ("_done", "_message", "_settler")

    def __init__(self, message: Inbound, settler: Settler) -> None:
        self._message = message
        self._settler = settler
        self._done = False

    @property
    def redelivered(self) -> bool:
        return self._message.redelivered

    async def settle(self, rejections: Sequence[Rejection]) -> None:
        if self._done:
            raise RuntimeError("delivery settled twice")
        self._done = True
        acks = self._settler.acks
        try:
            for rejection in rejections:
                await self._dead_letter(rejection)
        except SETTLE_ERRORS as e:
            # If the consuming channel is gone too, the broker has requeued it already.
            log.warning(
                "settle failed; message will be redelivered",
                data_type=self._settler.data_type.value,
                error=repr(e),
            )
            with contextlib.suppress(*SETTLE_ERRORS):
                await self._message.nack(requeue=True)
            acks.settled(self._message, requeued=True)
            return
        acks.settled(self._message)

    async def _dead_letter(self, rejection: Rejection) -> None:
        message, data_type = self._message, self._settler.data_type
        body = rejection.body if rejection.body is not None else message.body
        headers = dict(message.headers or {})
        headers[REASON_HEADER] = rejection.reason[:1000]
        headers["x-original-queue-type"] = data_type.value
        letter = aio_pika.Message(
            body,
            headers=headers,
            content_type=message.content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        topology = self._settler.topology
        publish = functools.partial(
            topology.dead_letter_exchange.publish,
            letter,
            routing_key=data_type.value,
            mandatory=True,
        )
        try:
            await publish()
        except aiormq.exceptions.PublishError:  # returned: no queue bound (one deleted?)
            log.warning("dead letter returned; its queue declared again", data_type=data_type.value)
            await topology.dead_letter_depth(data_type)
            await publish()  # returned again: a failure to settle, so redelivered later


class AckWindow:
    """Acknowledges one consuming channel's deliveries in runs, with multiple-acks.

    ``ack(multiple=True)`` on tag N settles every delivery up to N, so the window acks only
    to the end of the first run of received deliveries that are all settled: one settled
    out of order waits for those before it. A new channel (tags start again) forgets the
    old one's deliveries: the broker has requeued them.
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
        ``requeued``: nacked already, so passed over, not acked."""
        channel = _channel_of(message)
        if channel is None or channel is not self._channel:
            return  # a closed channel's delivery: the broker redelivers it
        self._settled[message.delivery_tag] = not requeued
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.get_running_loop().create_task(self._flush())

    async def flush(self) -> None:
        """Wait for the acks in progress (idempotent)."""
        if self._flushing is not None:
            # Shielded: a waiter cancelled (a reader stopped mid-resize) must not cancel
            # the acks, or every later flush would raise their CancelledError.
            await asyncio.shield(self._flushing)

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
