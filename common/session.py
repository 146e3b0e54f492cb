"""The consume loop: one session per broker connection until stopped, failed or given up.

A session declares the topology on its connection and reads every type's queue
(:mod:`common.reader`). A lost connection (a node down) ends the session; the next one
runs on a connection to another node (:mod:`common.link`) while the batches held go on.
Stopping (first SIGTERM/SIGINT, or a fatal error) stops consuming, drains the batches,
settles, and closes the channel, within ``shutdown_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import structlog
from aio_pika.abc import AbstractChannel

from common.amqp import SETTLE_ERRORS, Names, declare_topology
from common.batching import BatchProcessor
from common.consumer import MessageHandler
from common.link import REFUSALS, BrokerLink, connection_lost
from common.reader import PrefetchSizing, QueueReader
from common.records import DataType
from common.settings import CommonSettings
from common.watch import QueueDepths

log = structlog.get_logger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1


class ConsumeLoop:
    """Runs the sessions of one service and its shutdown; ``consuming`` while a session
    reads its queues, ``prefetch`` each type's current prefetch."""

    def __init__(
        self, *, name: str, settings: CommonSettings, names: Names, depths: QueueDepths
    ) -> None:
        self._name = name
        self._settings = settings
        self._names = names
        self._depths = depths
        self._sizing = PrefetchSizing(settings)
        self._readers: dict[DataType, QueueReader] = {}
        self.consuming = False
        self.prefetch: dict[DataType, int] = {}

    async def run(
        self,
        link: BrokerLink,
        handler: MessageHandler,
        processor: BatchProcessor,
        stop: asyncio.Event,
    ) -> int:
        """Consume on each connection in turn; the exit code once stopped or failed."""
        try:
            while (code := await self._session(link, handler, processor, stop)) is None:
                if not await link.reconnect():
                    await self._shutdown(processor, [], None)
                    return EXIT_OK
            return code
        finally:
            self.consuming = False

    async def _session(
        self,
        link: BrokerLink,
        handler: MessageHandler,
        processor: BatchProcessor,
        stop: asyncio.Event,
    ) -> int | None:
        """Declare, consume and wait on one connection; None when the connection is lost."""
        try:
            # A dead letter the broker cannot route must fail, not count as sent.
            channel = await link.connection.channel(on_return_raises=True)
            topology = await declare_topology(
                channel, self._names, delivery_limit=self._settings.amqp_delivery_limit
            )
        except REFUSALS as e:
            log.error("the broker refused the queues", service=self._name, error=str(e))
            return EXIT_FAILED
        except SETTLE_ERRORS as e:
            log.warning("declaring on the broker failed", service=self._name, error=repr(e))
            return None
        handler.use(topology)
        self._depths.queues = topology.queues
        self._readers = {
            t: QueueReader(t, self._names.queue(t), handler, self._sizing, self.prefetch)
            for t in topology.queues
        }
        tasks = [
            asyncio.create_task(reader.run(link.connection), name=f"consume-{t}")
            for t, reader in self._readers.items()
        ]
        self.consuming = True
        log.info("consuming", service=self._name, queues=[q.name for q in topology.queues.values()])
        code = await self._wait_until_stopped(stop, processor, tasks)
        self.consuming = False
        if code is None:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            return None
        await self._shutdown(processor, tasks, channel)
        return code

    async def _wait_until_stopped(
        self, stop: asyncio.Event, processor: BatchProcessor, tasks: list[asyncio.Task[None]]
    ) -> int | None:
        """The exit code once stopped or failed; None when the connection was lost."""
        stopper = asyncio.create_task(stop.wait())
        waiting: list[asyncio.Future[Any]] = [stopper, processor.failed, *tasks]
        done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if processor.failed.done():
            log.error("stopping after a fatal batch error", service=self._name)
            return EXIT_FAILED
        for task in done:
            if task not in tasks or task.cancelled() or (error := task.exception()) is None:
                continue
            if connection_lost(error):
                if stop.is_set():
                    continue  # stopping anyway
                return None
            log.error("consumer failed", service=self._name, error=repr(error))
            return EXIT_FAILED
        return EXIT_OK

    async def _shutdown(
        self,
        processor: BatchProcessor,
        tasks: list[asyncio.Task[None]],
        channel: AbstractChannel | None,
    ) -> None:
        started = time.monotonic()
        log.info("draining", service=self._name, held=processor.held)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            await asyncio.wait_for(processor.close(), timeout=self._settings.shutdown_timeout)
        except TimeoutError:
            log.error(
                "drain timed out; unsettled messages will be redelivered",
                service=self._name,
                held=processor.held,
            )
        for reader in self._readers.values():
            await reader.settler.flush()
        if channel is not None:
            with contextlib.suppress(*SETTLE_ERRORS):
                await asyncio.wait_for(channel.close(), timeout=5)
        log.info("stopped", service=self._name, seconds=round(time.monotonic() - started, 2))
