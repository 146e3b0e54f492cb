"""The control messages of a type, applied once the records before them are committed:
a delta's deletions, ``file_complete`` and ``extraction_complete``, with their log lines.

Their work is retried while the database or the broker channel is unavailable (the service
reconnects to a node meanwhile): an outage must neither stop the consumer nor dead-letter
a completion message.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog

from common import waiting
from common.amqp import SETTLE_ERRORS, Topology
from common.batching import BatchProcessor, Rejection
from common.delta import HeldVersions
from common.messages import Deletion, ExtractionComplete, FileComplete
from common.metrics import Metrics
from common.records import DataType
from common.settling import AmqpDelivery
from common.sink import BatchRejected, TransientWriteError, Writer

log = structlog.get_logger(__name__)

_T = TypeVar("_T")


async def retried(
    service: str, step: str, data_type: DataType, call: Callable[[], Awaitable[_T]]
) -> _T:
    """What ``call`` returns, once an outage (database or broker) is over."""
    return await waiting.retried(
        call,
        errors=(TransientWriteError, *SETTLE_ERRORS),
        event="completion retry",
        service=service,
        data_type=data_type.value,
        step=step,
    )


class Completions:
    """Applies a type's control messages through the writer and reports each file and
    update; ``held`` is told when the store's held version may have changed."""

    def __init__(
        self,
        *,
        service: str,
        processor: BatchProcessor,
        writer: Writer,
        metrics: Metrics,
        held: HeldVersions,
    ) -> None:
        self._service = service
        self._processor = processor
        self._writer = writer
        self._metrics = metrics
        self._held = held
        self._file_started: dict[DataType, float] = {}
        self._deleted: dict[DataType, int] = {}

    def data_arrived(self, data_type: DataType) -> None:
        """Records of ``data_type`` came: its file's duration counts from the first."""
        self._file_started.setdefault(data_type, time.monotonic())

    async def deletion(self, msg: Deletion, delivery: AmqpDelivery) -> None:
        """After the records of the type before it are committed, in one transaction."""
        dt = msg.data_type
        self._metrics.record_consumed(dt, 1)
        await self._processor.drain(dt)
        try:
            deleted = await self._retried(
                "delete", dt, lambda: self._writer.delete(dt, msg.ids, version=msg.version)
            )
        except BatchRejected as e:
            log.warning("deletions dead-lettered", service=self._service, data_type=dt.value)
            await delivery.settle([Rejection(str(e))])
            self._metrics.record_settled(dt, 1)
            self._metrics.record_dead_letter(dt)
            return
        await delivery.settle([])
        self._metrics.record_settled(dt, 1)
        self._deleted[dt] = self._deleted.get(dt, 0) + deleted

    async def file_complete(self, msg: FileComplete, delivery: AmqpDelivery) -> None:
        await self._processor.drain(msg.data_type)
        await self._retried("file_complete", msg.data_type, lambda: self._writer.file_complete(msg))
        await delivery.settle([])
        stats = self._metrics.types[msg.data_type]
        started = self._file_started.get(msg.data_type)
        duration = time.monotonic() - started if started is not None else 0.0
        done = stats.written + stats.unchanged
        log.info(
            "file complete",
            service=self._service,
            data_type=msg.data_type.value,
            file=msg.file,
            version=msg.version,
            producer_total=msg.total_processed,
            records=done,
            written=stats.written,
            unchanged=stats.unchanged,
            dead_lettered=stats.dead_lettered,
            duration_s=round(duration, 1),
            records_per_sec=round(done / duration, 1) if duration > 0 else None,
        )

    async def extraction_complete(
        self,
        data_type: DataType,
        msg: ExtractionComplete,
        delivery: AmqpDelivery,
        topology: Topology,
    ) -> None:
        await self._processor.drain(data_type)
        depth = await self._retried(
            "dead-letter depth", data_type, lambda: topology.dead_letter_depth(data_type)
        )
        deleted = await self._retried(
            "extraction_complete",
            data_type,
            lambda: self._writer.extraction_complete(data_type, msg, dead_letters=depth),
        )
        self._held.forget(data_type)
        await delivery.settle([])
        stats = self._metrics.types[data_type]
        stats.extraction_complete = msg.version or "unknown"
        started = self._file_started.pop(data_type, None)
        deleted += self._deleted.pop(data_type, 0)
        log.info(
            "update summary",
            service=self._service,
            data_type=data_type.value,
            version=msg.version,
            base_version=msg.delta_base(data_type),
            producer_count=msg.record_counts.get(data_type.value),
            added=stats.added,
            changed=stats.written - stats.added,
            unchanged=stats.unchanged,
            deleted=deleted,
            dead_lettered=stats.dead_lettered,
            duration_s=round(time.monotonic() - started, 1) if started is not None else None,
        )

    async def _retried(
        self, step: str, data_type: DataType, call: Callable[[], Awaitable[_T]]
    ) -> _T:
        return await retried(self._service, step, data_type, call)
