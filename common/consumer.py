"""Turns AMQP deliveries into BatchProcessor work: decoding, dead-lettering, completions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import orjson
import structlog

from common.amqp import SETTLE_ERRORS, Topology
from common.batching import BatchProcessor, Rejection
from common.decoding import Decoder
from common.delta import HeldVersions
from common.inbound import Inbound
from common.messages import (
    DataMessage,
    Deletion,
    ExtractionComplete,
    FileComplete,
    InvalidMessage,
    Message,
)
from common.metrics import Metrics
from common.records import DataType
from common.settling import AmqpDelivery
from common.sink import BatchRejected, TransientWriteError, Writer
from common.waiting import RETRY

log = structlog.get_logger(__name__)

_T = TypeVar("_T")
Decoding = asyncio.Future[Message]


class MessageHandler:
    """Handles one delivery at a time per queue; safe to share across the type queues."""

    def __init__(
        self,
        *,
        service: str,
        processor: BatchProcessor,
        writer: Writer,
        metrics: Metrics,
        decoder: Decoder,
    ) -> None:
        self._service = service
        self._processor = processor
        self._writer = writer
        self._metrics = metrics
        self._decoder = decoder
        self._topology: Topology | None = None
        self._file_started: dict[DataType, float] = {}
        self._held = HeldVersions(self._held_version)
        self._deleted: dict[DataType, int] = {}

    def use(self, topology: Topology) -> None:
        """Dead-letter through ``topology`` (declared on the current connection) from now on;
        deliveries of an earlier connection keep theirs, which fails: they are redelivered."""
        self._topology = topology

    @property
    def topology(self) -> Topology:
        if self._topology is None:
            raise RuntimeError("MessageHandler has no topology yet")
        return self._topology

    def start(self, data_type: DataType, message: Inbound) -> Decoding:
        """Begin decoding a delivery as it arrives; :meth:`handle` takes the result."""
        return self._decoder.start(data_type, message.body)

    async def handle(self, data_type: DataType, delivery: AmqpDelivery, decoding: Decoding) -> int:
        """Process one delivery; returns how many records a data message carried, else 0.

        ``decoding`` is what :meth:`start` returned for it.
        """
        try:
            decoded = await decoding
            if isinstance(decoded, DataMessage | Deletion) and decoded.base_version is not None:
                await self._check_delta(decoded)
        except InvalidMessage as e:
            log.warning(
                "message dead-lettered",
                service=self._service,
                data_type=data_type.value,
                reason=str(e),
                redelivered=delivery.redelivered,
            )
            await self._processor.add(data_type, [], delivery, rejections=[Rejection(str(e))])
            return 0
        if isinstance(decoded, DataMessage):
            await self._data(decoded, delivery)
            return max(len(decoded.records) + len(decoded.rejected), 1)
        if isinstance(decoded, Deletion):
            await self._deletion(decoded, delivery)
        elif isinstance(decoded, FileComplete):
            await self._file_complete(decoded, delivery)
        else:
            await self._extraction_complete(data_type, decoded, delivery)
        return 0

    async def _check_delta(self, msg: DataMessage | Deletion) -> None:
        """A delta message applies only over the version it was computed from."""
        base, dt = msg.base_version, msg.data_type
        version = msg.version if isinstance(msg, Deletion) else _version_of(msg)
        if base is not None and (reason := await self._held.refusal(dt, base, version)):
            raise InvalidMessage(reason)

    async def _held_version(self, data_type: DataType) -> str | None:
        return await self._retry(
            "held version", data_type, lambda: self._writer.held_version(data_type)
        )

    async def _deletion(self, msg: Deletion, delivery: AmqpDelivery) -> None:
        """After the records of the type before it are committed, in one transaction."""
        dt = msg.data_type
        self._metrics.record_consumed(dt, 1)
        await self._processor.drain(dt)
        try:
            deleted = await self._retry(
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

    async def _data(self, msg: DataMessage, delivery: AmqpDelivery) -> None:
        self._file_started.setdefault(msg.data_type, time.monotonic())
        rejections = []
        for bad in msg.rejected:
            log.warning(
                "record dead-lettered",
                service=self._service,
                data_type=msg.data_type.value,
                index=bad.index,
                reason=bad.reason,
            )
            rejections.append(Rejection(bad.reason, _encode(bad.raw)))
        await self._processor.add(
            msg.data_type, msg.records, delivery, rejections=rejections, batch=msg.is_batch
        )

    async def _file_complete(self, msg: FileComplete, delivery: AmqpDelivery) -> None:
        await self._processor.drain(msg.data_type)
        await self._retry("file_complete", msg.data_type, lambda: self._writer.file_complete(msg))
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

    async def _extraction_complete(
        self, data_type: DataType, msg: ExtractionComplete, delivery: AmqpDelivery
    ) -> None:
        await self._processor.drain(data_type)
        depth = await self._retry(
            "dead-letter depth", data_type, lambda: self.topology.dead_letter_depth(data_type)
        )
        deleted = await self._retry(
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

    async def _retry(self, step: str, data_type: DataType, call: Callable[[], Awaitable[_T]]) -> _T:
        """Completion work, retried with backoff while the database or the broker channel
        is unavailable (the service reconnects to a node meanwhile): an outage must neither stop
        the consumer nor dead-letter the completion message."""
        attempt = 0
        while True:
            try:
                return await call()
            except (TransientWriteError, *SETTLE_ERRORS) as e:
                attempt += 1
                delay = RETRY.delay(attempt)
                log.warning(
                    "completion retry",
                    service=self._service,
                    data_type=data_type.value,
                    step=step,
                    attempt=attempt,
                    delay_s=round(delay, 2),
                    error=str(e) or repr(e),
                )
                await asyncio.sleep(delay)


def discard(decoding: Decoding) -> None:
    """Drop a decoding that will not be handled (shutdown), its outcome included."""
    decoding.cancel()
    if decoding.done() and not decoding.cancelled():
        decoding.exception()  # retrieved: no "exception was never retrieved" report


def _version_of(msg: DataMessage) -> str | None:
    """The version a delta's records lead to (they all carry the envelope's)."""
    return msg.records[0].version if msg.records else None


def _encode(obj: object) -> bytes | None:
    try:
        return orjson.dumps(obj)
    except TypeError:
        return None
