"""The consumer lifecycle both services share.

Start: health endpoint, broker connection (retried until it answers), topology, one
consuming task per data type. Stop (first SIGTERM/SIGINT, or a fatal error): stop
consuming, drain the batches, settle, close the channel and connection, all within
``shutdown_timeout``; a second signal exits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict
from typing import Any, TypeVar

import structlog
from aio_pika.abc import AbstractChannel, AbstractQueue, AbstractRobustConnection

from common.amqp import SETTLE_ERRORS, AckWindow, Names, Topology, connect, declare_topology
from common.batching import BatchProcessor
from common.cli import package_version, parse_service_args
from common.consumer import Decoding, MessageHandler, discard
from common.decoding import Decoder, Projection, tune_gc
from common.health import HealthServer
from common.inbound import ConsumerLost, Inbound, QueueConsumer
from common.logging import configure_logging
from common.metrics import Metrics
from common.records import DataType
from common.settings import CommonSettings, SettingsError, load
from common.sink import Writer
from common.watch import ProgressLog, QueueDepths

log = structlog.get_logger(__name__)

# With batch messages, at least this many are prefetched so the next batch is always near.
_MIN_BATCH_PREFETCH = 4
_SWITCH_INTERVAL_S = 0.0005

S = TypeVar("S", bound=CommonSettings)

EXIT_OK = 0
EXIT_FAILED = 1


def install_signal_handlers(stop: asyncio.Event) -> None:
    """First SIGTERM/SIGINT sets ``stop``; a second one exits the process at once."""
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if stop.is_set():
            log.warning("second signal: exiting now", signal=signal.Signals(signum).name)
            os._exit(128 + signum)
        log.info("shutdown requested", signal=signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)


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
        self._connection: AbstractRobustConnection | None = None
        self._queues: dict[DataType, AbstractQueue] = {}
        self._acks: dict[DataType, AckWindow] = {}
        self._consuming = False
        self._depths = QueueDepths(self.metrics)
        self.prefetch: dict[DataType, int] = {}
        # Read per message when sizing the prefetch: computed once.
        batch = settings.batch()
        self._largest_write = {t: batch.largest_write(t) for t in DataType}
        self._single_prefetch = settings.prefetch()
        self.health: HealthServer | None = None

    async def run(self, stop: asyncio.Event) -> int:
        async with HealthServer(
            host="0.0.0.0",  # noqa: S104 - a container's health port must be reachable
            port=self._settings.health_port,
            check=self._health,
            registry=self.metrics.registry,
            refresh=self._depths.refresh,
        ) as self.health:
            connection = await connect(self._settings.amqp_urls(), stop=stop)
            if connection is None:
                return EXIT_OK
            self._connection = connection
            try:
                return await self._consume(connection, stop)
            finally:
                self._consuming = False
                await asyncio.wait_for(connection.close(), timeout=10)

    async def _consume(self, connection: AbstractRobustConnection, stop: asyncio.Event) -> int:
        channel = await connection.channel()
        topology = await declare_topology(
            channel, self.names, delivery_limit=self._settings.amqp_delivery_limit
        )
        self._queues = self._depths.queues = topology.queues
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
            handler = self._handler(processor, topology, decoder)
            tasks = [
                asyncio.create_task(
                    self._consume_queue(connection, t, handler), name=f"consume-{t}"
                )
                for t in topology.queues
            ]
            self._consuming = True
            log.info("consuming", service=self.name, queues=[q.name for q in self._queues.values()])
            code = await self._wait_until_stopped(stop, processor, tasks)
            self._consuming = False
            await self._shutdown(processor, tasks, channel)
        return code

    def _handler(
        self, processor: BatchProcessor, topology: Topology, decoder: Decoder
    ) -> MessageHandler:
        return MessageHandler(
            service=self.name,
            processor=processor,
            writer=self._writer,
            metrics=self.metrics,
            dlx=topology.dead_letter_exchange,
            dead_letter_depth=topology.dead_letter_depth,
            decoder=decoder,
        )

    async def _consume_queue(
        self, connection: AbstractRobustConnection, data_type: DataType, handler: MessageHandler
    ) -> None:
        """Consume one type's queue on a channel of its own, so its prefetch is its own.

        The prefetch is sized to the messages seen: twice the batch size for one-record
        messages (so a batch can fill), a few messages when the producer sends batch
        messages (so buffered messages never hold far more records than ``max_pending``).
        It starts small, since a large window of batch messages is hundreds of megabytes.
        A new size needs a new consumer (the broker applies a prefetch to consumers created
        after it); the old one is cancelled and what it already received is handled first,
        in order, so a completion message never overtakes the records before it.
        """
        channel = await connection.channel()
        inbox: asyncio.Queue[tuple[Inbound, Decoding] | ConsumerLost] = asyncio.Queue()
        acks = self._acks[data_type] = AckWindow(data_type)

        def receive(message: Inbound | ConsumerLost) -> None:
            if isinstance(message, ConsumerLost):
                inbox.put_nowait(message)
                return
            acks.received(message)
            inbox.put_nowait((message, handler.start(data_type, message)))

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
                    carried = await self._handle_next(data_type, inbox, handler, acks)
                    wanted = self._prefetch_for(data_type, carried) if carried else prefetch
                await consumer.cancel()  # what it received is in the inbox now, in order
                while not inbox.empty():
                    await self._handle_next(data_type, inbox, handler, acks)
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
        inbox: asyncio.Queue[tuple[Inbound, Decoding] | ConsumerLost],
        handler: MessageHandler,
        acks: AckWindow,
    ) -> int:
        item = await inbox.get()
        if isinstance(item, ConsumerLost):
            raise item
        message, decoding = item
        return await handler.handle(data_type, message, decoding, acks)

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
    ) -> int:
        stopper = asyncio.create_task(stop.wait())
        waiting: list[asyncio.Future[Any]] = [stopper, processor.failed, *tasks]
        done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if processor.failed.done():
            log.error("stopping after a fatal batch error", service=self.name)
            return EXIT_FAILED
        for task in done:
            if task in tasks and not task.cancelled() and task.exception() is not None:
                log.error("consumer failed", service=self.name, error=repr(task.exception()))
                return EXIT_FAILED
        return EXIT_OK

    async def _shutdown(
        self, processor: BatchProcessor, tasks: list[asyncio.Task[None]], channel: AbstractChannel
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
        for window in self._acks.values():
            await window.flush()
        with contextlib.suppress(*SETTLE_ERRORS):
            await asyncio.wait_for(channel.close(), timeout=5)
        log.info("stopped", service=self.name, seconds=round(time.monotonic() - started, 2))

    def _health(self) -> tuple[bool, dict[str, Any]]:
        connected = self._connection is not None and not self._connection.is_closed
        ok = connected and self._consuming
        return ok, {
            "service": self.name,
            "connected": connected,
            "consuming": self._consuming,
            "types": self.metrics.snapshot(),
        }


def run_main(
    name: str,
    settings_cls: type[S],
    serve: Callable[[S, asyncio.Event], Awaitable[int]],
    *,
    description: str,
    argv: Sequence[str] | None = None,
) -> int:
    """Entry point shared by the services: arguments (``--help``, ``--version``), settings,
    logging, signals, then ``serve``."""
    parse_service_args(name, description, settings_cls, argv)
    try:
        settings = load(settings_cls)
    except SettingsError as e:
        sys.stderr.write(f"{name}: {e}\n")
        return 2
    configure_logging(settings.log_level, settings.log_format)
    if settings.decode_workers == 0:
        # Batch messages are then decoded on a thread of this process: a short switch
        # interval hands the interpreter back to the event loop often, so database round
        # trips are not held up behind a decode. With workers the loop has it to itself.
        sys.setswitchinterval(_SWITCH_INTERVAL_S)
    tune_gc()
    if warning := settings.prefetch_warning():
        log.warning("prefetch below batch size", detail=warning)
    log.info(
        "starting",
        service=name,
        version=package_version(),
        prefetch=settings.prefetch(),
        **asdict(settings.batch()),
    )

    async def _run() -> int:
        stop = asyncio.Event()
        install_signal_handlers(stop)
        return await serve(settings, stop)

    return asyncio.run(_run())
