"""The consumer lifecycle both services share.

Start: health endpoint, broker connection (to the first node that answers), topology, one
consuming task per data type; a lost connection is replaced by one to the next node
(:mod:`common.link`) while the batches held go on. Stop (first SIGTERM/SIGINT, or a fatal
error): stop consuming, drain the batches, settle, close the channel and connection, all
within ``shutdown_timeout``; a second signal exits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from typing import Any

import structlog
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractQueue

from common.amqp import SETTLE_ERRORS, Names, declare_topology
from common.batching import BatchProcessor
from common.consumer import Decoding, MessageHandler, discard
from common.decoding import Decoder, Projection
from common.entry import run_main
from common.health import HealthServer
from common.inbound import ChannelLost, ConsumerLost, Inbound, QueueConsumer
from common.link import BrokerLink, connection_lost
from common.metrics import Metrics
from common.records import DataType
from common.settings import CommonSettings
from common.settling import AmqpDelivery, Settler
from common.sink import Writer
from common.watch import ProgressLog, QueueDepths

log = structlog.get_logger(__name__)

__all__ = ["EXIT_FAILED", "EXIT_OK", "Service", "run_main"]

# With batch messages, at least this many are prefetched so the next batch is always near.
_MIN_BATCH_PREFETCH = 4
Lost = ConsumerLost | ChannelLost

EXIT_OK = 0
EXIT_FAILED = 1


class Service:
    """One consumer service: ``await Service(...).run(stop)`` returns an exit code."""

    def __init__(
        self,
        *,
        name: str,
        settings: CommonSettings,
        writer: Writer,
        projection: Projection | None = None,
    ) -> None:
        self.name = name
        self._settings = settings
        self._writer = writer
        self._projection = projection
        self.metrics = Metrics(name)
        self.names = Names(settings.discogs_exchange_prefix, name)
        self._link: BrokerLink | None = None
        self._queues: dict[DataType, AbstractQueue] = {}
        self._settlers: dict[DataType, Settler] = {}
        self._consuming = False
        self._depths = QueueDepths(self.metrics)
        self.prefetch: dict[DataType, int] = {}
        # Read per message when sizing the prefetch: computed once.
        batch = settings.batch()
        self._largest_write = {t: batch.largest_write(t) for t in DataType}
        self._single_prefetch = settings.prefetch()
        self.health: HealthServer | None = None

    async def run(self, stop: asyncio.Event) -> int:
        async with (
            HealthServer(
                host="0.0.0.0",  # noqa: S104 - a container's health port must be reachable
                port=self._settings.health_port,
                check=self.status,
                registry=self.metrics.registry,
                refresh=self._depths.refresh,
            ) as self.health,
            BrokerLink(self._settings.amqp_urls(), stop=stop) as link,
        ):
            self._link = link
            if not await link.connect():
                return EXIT_OK
            try:
                return await self._consume(link, stop)
            finally:
                self._consuming = False

    async def _consume(self, link: BrokerLink, stop: asyncio.Event) -> int:
        """Consume on each connection in turn until stopped; a lost connection (a node
        down) is replaced by one to another node while the batches held go on."""
        processor = BatchProcessor(
            writer=self._writer,
            config=self._settings.batch(),
            metrics=self.metrics,
            service=self.name,
        )
        decoder = Decoder(
            workers=self._settings.decode_workers,
            max_bytes=self._settings.amqp_max_message_bytes,
            projection=self._projection,
        )
        progress = ProgressLog(
            service=self.name,
            metrics=self.metrics,
            depths=self._depths,
            interval=self._settings.progress_interval,
        )
        async with decoder, processor, progress:
            handler = MessageHandler(
                service=self.name,
                processor=processor,
                writer=self._writer,
                metrics=self.metrics,
                decoder=decoder,
            )
            while (code := await self._session(link, handler, processor, stop)) is None:
                if not await link.reconnect():
                    await self._shutdown(processor, [], None)
                    return EXIT_OK
        return code

    async def _session(
        self,
        link: BrokerLink,
        handler: MessageHandler,
        processor: BatchProcessor,
        stop: asyncio.Event,
    ) -> int | None:
        """Declare, consume and wait on one connection; None when the connection is lost."""
        try:
            channel = await link.connection.channel()
            topology = await declare_topology(
                channel, self.names, delivery_limit=self._settings.amqp_delivery_limit
            )
        except SETTLE_ERRORS as e:
            log.warning("declaring on the broker failed", service=self.name, error=repr(e))
            return None
        handler.use(topology)
        self._queues = self._depths.queues = topology.queues
        tasks = [
            asyncio.create_task(
                self._consume_queue(link.connection, t, handler), name=f"consume-{t}"
            )
            for t in topology.queues
        ]
        self._consuming = True
        log.info("consuming", service=self.name, queues=[q.name for q in self._queues.values()])
        code = await self._wait_until_stopped(stop, processor, tasks)
        self._consuming = False
        if code is None:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            return None
        await self._shutdown(processor, tasks, channel)
        return code

    async def _consume_queue(
        self, connection: AbstractConnection, data_type: DataType, handler: MessageHandler
    ) -> None:
        """Consume one type's queue on a channel of its own, so its prefetch is its own.

        The prefetch is sized to the messages seen: twice the batch size for one-record
        messages (so a batch can fill), a few messages when the producer sends batch
        messages (so buffered messages never hold far more records than ``max_pending``).
        It starts small, since a large window of batch messages is hundreds of megabytes.
        A new size needs a new consumer: the broker applies a prefetch to consumers created
        after it (``set_qos`` on the live channel leaves this one as it is, and a channel-wide
        prefetch is not supported by quorum queues). The old one is cancelled and what it
        already received is handled first, in order, so a completion message never
        overtakes the records before it.
        """
        channel = await connection.channel()
        inbox: asyncio.Queue[tuple[AmqpDelivery, Decoding] | Lost] = asyncio.Queue()
        dlx = handler.topology.dead_letter_exchange
        settler = self._settlers[data_type] = Settler(data_type, dlx)

        def receive(message: Inbound | Lost) -> None:
            if isinstance(message, Lost):
                inbox.put_nowait(message)
                return
            inbox.put_nowait((settler.received(message), handler.start(data_type, message)))

        prefetch = self._settings.amqp_prefetch or _MIN_BATCH_PREFETCH
        consumer: QueueConsumer | None = None
        try:
            while True:
                await channel.set_qos(prefetch_count=prefetch)
                self.prefetch[data_type] = prefetch
                consumer = QueueConsumer(channel, self.names.queue(data_type), receive)
                await consumer.start()
                wanted = prefetch
                while wanted == prefetch:
                    carried = await self._handle_next(data_type, inbox, handler)
                    wanted = self._prefetch_for(data_type, carried) if carried else prefetch
                await consumer.cancel()  # what it received is in the inbox now, in order
                while not inbox.empty():
                    await self._handle_next(data_type, inbox, handler)
                log.info("prefetch resized", data_type=data_type.value, prefetch=wanted)
                prefetch = wanted
        finally:
            if consumer is not None:
                consumer.detach()
            while not inbox.empty():
                if isinstance(item := inbox.get_nowait(), tuple):
                    discard(item[1])

    @staticmethod
    async def _handle_next(
        data_type: DataType,
        inbox: asyncio.Queue[tuple[AmqpDelivery, Decoding] | Lost],
        handler: MessageHandler,
    ) -> int:
        item = await inbox.get()
        if isinstance(item, Lost):
            raise item
        delivery, decoding = item
        return await handler.handle(data_type, delivery, decoding)

    def _prefetch_for(self, data_type: DataType, records_per_message: int) -> int:
        """The prefetch that keeps two writes' worth of records arriving."""
        if self._settings.amqp_prefetch is not None or records_per_message <= 1:
            return self._single_prefetch
        return max(
            _MIN_BATCH_PREFETCH,
            math.ceil(2 * self._largest_write[data_type] / records_per_message),
        )

    async def _wait_until_stopped(
        self, stop: asyncio.Event, processor: BatchProcessor, tasks: list[asyncio.Task[None]]
    ) -> int | None:
        """The exit code once stopped or failed; None when the connection was lost."""
        stopper = asyncio.create_task(stop.wait())
        waiting: list[asyncio.Future[Any]] = [stopper, processor.failed, *tasks]
        done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if processor.failed.done():
            log.error("stopping after a fatal batch error", service=self.name)
            return EXIT_FAILED
        for task in done:
            if task not in tasks or task.cancelled() or (error := task.exception()) is None:
                continue
            if connection_lost(error):
                if stop.is_set():
                    continue  # stopping anyway
                return None
            log.error("consumer failed", service=self.name, error=repr(error))
            return EXIT_FAILED
        return EXIT_OK

    async def _shutdown(
        self,
        processor: BatchProcessor,
        tasks: list[asyncio.Task[None]],
        channel: AbstractChannel | None,
    ) -> None:
        started = time.monotonic()
        log.info("draining", service=self.name, held=processor.held)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            await asyncio.wait_for(processor.close(), timeout=self._settings.shutdown_timeout)
        except TimeoutError:
            log.error(
                "drain timed out; unsettled messages will be redelivered",
                service=self.name,
                held=processor.held,
            )
        for settler in self._settlers.values():
            await settler.flush()
        if channel is not None:
            with contextlib.suppress(*SETTLE_ERRORS):
                await asyncio.wait_for(channel.close(), timeout=5)
        log.info("stopped", service=self.name, seconds=round(time.monotonic() - started, 2))

    def status(self) -> tuple[bool, dict[str, Any]]:
        """Whether the service is healthy (connected and consuming), and what /health shows."""
        connected = self._link is not None and self._link.connected
        ok = connected and self._consuming
        return ok, {
            "service": self.name,
            "connected": connected,
            "node": self._link.node if self._link is not None else None,
            "consuming": self._consuming,
            "types": self.metrics.snapshot(),
        }
