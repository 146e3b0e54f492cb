"""Reading one type's queue on a channel of its own, its prefetch sized to the messages seen.

The prefetch is twice the batch size for one-record messages (so a batch can fill), a few
messages when the producer sends batch messages (so buffered messages never hold far more
records than ``max_pending``). It starts small, since a large window of batch messages is
hundreds of megabytes. A new size needs a new consumer: the broker applies a prefetch to
consumers created after it (``set_qos`` on the live channel leaves this one as it is, and
a channel-wide prefetch is not supported by quorum queues). The old one is cancelled and
what it already received is handled first, in order, so a completion message never
overtakes the records before it; and written and acked before the new one starts, since a
lost channel gives a quorum queue back each consumer's unacked messages as a run of its own,
the runs in no fixed order: with two consumers holding some, a completion message could
come back ahead of records sent before it.
"""

from __future__ import annotations

import asyncio
import math

import structlog
from aio_pika.abc import AbstractConnection

from common.consumer import Decoding, MessageHandler, discard
from common.inbound import ChannelLost, ConsumerLost, Inbound, QueueConsumer
from common.records import DataType
from common.settings import CommonSettings
from common.settling import AmqpDelivery, Settler

log = structlog.get_logger(__name__)

# With batch messages, at least this many are prefetched so the next batch is always near.
_MIN_BATCH_PREFETCH = 4
Lost = ConsumerLost | ChannelLost


class PrefetchSizing:
    """The prefetch a queue starts with, and the one that keeps two writes' worth of
    records arriving once the records per message are known."""

    def __init__(self, settings: CommonSettings) -> None:
        batch = settings.batch()
        self._fixed = settings.amqp_prefetch
        self._single = settings.prefetch()
        self._largest_write = {t: batch.largest_write(t) for t in DataType}
        self.first = self._fixed or _MIN_BATCH_PREFETCH

    def after(self, data_type: DataType, records_per_message: int) -> int:
        if self._fixed is not None or records_per_message <= 1:
            return self._single
        wanted = math.ceil(2 * self._largest_write[data_type] / records_per_message)
        return max(_MIN_BATCH_PREFETCH, wanted)


class QueueReader:
    """Consumes one type's queue on one connection, in order, until it is lost or cancelled.

    ``prefetch`` is shared with the service, which shows each type's current size.
    """

    def __init__(
        self,
        data_type: DataType,
        queue: str,
        handler: MessageHandler,
        sizing: PrefetchSizing,
        prefetch: dict[DataType, int],
    ) -> None:
        self._data_type = data_type
        self._queue = queue
        self._handler = handler
        self._sizing = sizing
        self._prefetch = prefetch
        self._inbox: asyncio.Queue[tuple[AmqpDelivery, Decoding] | Lost] = asyncio.Queue()
        self.settler = Settler(data_type, handler.topology)

    async def run(self, connection: AbstractConnection) -> None:
        channel = await connection.channel()
        prefetch = self._sizing.first
        consumer: QueueConsumer | None = None
        try:
            while True:
                await channel.set_qos(prefetch_count=prefetch)
                self._prefetch[self._data_type] = prefetch
                consumer = QueueConsumer(channel, self._queue, self._receive)
                await consumer.start()
                wanted = prefetch
                while wanted == prefetch:
                    carried = await self._handle_next()
                    wanted = self._sizing.after(self._data_type, carried) if carried else prefetch
                await consumer.cancel()  # what it received is in the inbox now, in order
                while not self._inbox.empty():
                    await self._handle_next()
                await self._handler.drain(self._data_type)
                await self.settler.flush()
                log.info("prefetch resized", data_type=self._data_type.value, prefetch=wanted)
                prefetch = wanted
        finally:
            if consumer is not None:
                consumer.detach()
            while not self._inbox.empty():
                if isinstance(item := self._inbox.get_nowait(), tuple):
                    discard(item[1])

    def _receive(self, message: Inbound | Lost) -> None:
        if isinstance(message, Lost):
            self._inbox.put_nowait(message)
            return
        delivery = self.settler.received(message)
        self._inbox.put_nowait((delivery, self._handler.start(self._data_type, message)))

    async def _handle_next(self) -> int:
        item = await self._inbox.get()
        if isinstance(item, Lost):
            raise item
        delivery, decoding = item
        return await self._handler.handle(self._data_type, delivery, decoding)
