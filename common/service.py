"""The consumer service both graphinator and tableinator run: its parts, wired, and its health.

Start: health endpoint, broker connection (to the first node that answers), then the
consume loop (:mod:`common.session`) over a decoder, a batch processor and a progress
log. Stop: the loop drains and settles within ``shutdown_timeout``; a second signal exits
at once (:mod:`common.entry`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from common.amqp import Names
from common.batching import BatchProcessor
from common.consumer import MessageHandler
from common.decoding import Decoder, Projection
from common.entry import run_main
from common.health import HealthServer
from common.link import BrokerLink
from common.metrics import Metrics
from common.records import DataType
from common.session import EXIT_FAILED, EXIT_OK, ConsumeLoop
from common.settings import CommonSettings
from common.sink import Writer
from common.watch import ProgressLog, QueueDepths

__all__ = ["EXIT_FAILED", "EXIT_OK", "Service", "run_main"]


class Service:
    """Builds one consumer service from its settings and writer, runs it
    (``await Service(...).run(stop)`` returns an exit code), and reports its health."""

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
        self._depths = QueueDepths(self.metrics)
        self._loop = ConsumeLoop(
            name=name, settings=settings, names=self.names, depths=self._depths
        )
        self._link: BrokerLink | None = None
        self.health: HealthServer | None = None

    @property
    def prefetch(self) -> dict[DataType, int]:
        """Each type's current prefetch (the same dict throughout)."""
        return self._loop.prefetch

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
            return await self._consume(link, stop)

    async def _consume(self, link: BrokerLink, stop: asyncio.Event) -> int:
        settings = self._settings
        processor = BatchProcessor(
            writer=self._writer, config=settings.batch(), metrics=self.metrics, service=self.name
        )
        decoder = Decoder(
            workers=settings.decode_workers,
            max_bytes=settings.amqp_max_message_bytes,
            projection=self._projection,
        )
        progress = ProgressLog(
            service=self.name,
            metrics=self.metrics,
            depths=self._depths,
            interval=settings.progress_interval,
        )
        async with decoder, processor, progress:
            handler = MessageHandler(
                service=self.name,
                processor=processor,
                writer=self._writer,
                metrics=self.metrics,
                decoder=decoder,
            )
            return await self._loop.run(link, handler, processor, stop)

    def status(self) -> tuple[bool, dict[str, Any]]:
        """Whether the service is healthy (connected and consuming), and what /health shows."""
        connected = self._link is not None and self._link.connected
        consuming = self._loop.consuming
        return connected and consuming, {
            "service": self.name,
            "connected": connected,
            "node": self._link.node if self._link is not None else None,
            "consuming": consuming,
            "types": self.metrics.snapshot(),
        }
