"""Turns AMQP deliveries into work: each body decoded and checked (:class:`Intake`), then
routed (:class:`MessageHandler`) to the batch processor or to the completions."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import orjson
import structlog

from common.amqp import Topology
from common.batching import BatchProcessor, Rejection
from common.completions import Completions, retried
from common.decoding import Decoder
from common.delta import HeldVersions
from common.inbound import Inbound
from common.messages import (
    DataMessage,
    Deletion,
    FileComplete,
    InvalidMessage,
    Message,
)
from common.metrics import Metrics
from common.records import DataType
from common.settling import AmqpDelivery
from common.sink import Writer

log = structlog.get_logger(__name__)

Decoding = asyncio.Future[Message]


class Intake:
    """Decodes each body as it arrives and checks that a delta message applies over the
    version the store holds; what fails either is an :class:`InvalidMessage`."""

    def __init__(self, *, service: str, decoder: Decoder, writer: Writer) -> None:
        self._service = service
        self._decoder = decoder
        self._writer = writer
        self.held = HeldVersions(self._held_version)

    def start(self, data_type: DataType, body: bytes) -> Decoding:
        return self._decoder.start(data_type, body)

    async def message(self, decoding: Decoding) -> Message:
        """The decoded message of ``decoding`` (from :meth:`start`), if it may apply."""
        decoded = await decoding
        if isinstance(decoded, DataMessage | Deletion) and decoded.base_version is not None:
            base, dt = decoded.base_version, decoded.data_type
            version = decoded.version if isinstance(decoded, Deletion) else _version_of(decoded)
            if reason := await self.held.refusal(dt, base, version):
                raise InvalidMessage(reason)
        return decoded

    async def _held_version(self, data_type: DataType) -> str | None:
        def read() -> Awaitable[str | None]:
            return self._writer.held_version(data_type)

        return await retried(self._service, "held version", data_type, read)


class MessageHandler:
    """Routes each delivery of the type queues: data to the batch processor, control
    messages to the completions, an invalid message to its dead-letter queue."""

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
        self._intake = Intake(service=service, decoder=decoder, writer=writer)
        self._completions = Completions(
            service=service,
            processor=processor,
            writer=writer,
            metrics=metrics,
            held=self._intake.held,
        )
        self._topology: Topology | None = None

    def use(self, topology: Topology) -> None:
        """Dead-letter through ``topology`` (declared on the current connection) from now on;
        deliveries of an earlier connection keep theirs, which fails: they are redelivered."""
        self._topology = topology

    @property
    def topology(self) -> Topology:
        if self._topology is None:
            raise RuntimeError("MessageHandler has no topology yet")
        return self._topology

    async def drain(self, data_type: DataType) -> None:
        """Write and settle every record of ``data_type`` handled so far."""
        await self._processor.drain(data_type)

    def start(self, data_type: DataType, message: Inbound) -> Decoding:
        """Begin decoding a delivery as it arrives; :meth:`handle` takes the result."""
        return self._intake.start(data_type, message.body)

    async def handle(self, data_type: DataType, delivery: AmqpDelivery, decoding: Decoding) -> int:
        """Process one delivery; returns how many records a data message carried, else 0.

        ``decoding`` is what :meth:`start` returned for it.
        """
        try:
            decoded = await self._intake.message(decoding)
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
            await self._completions.deletion(decoded, delivery)
        elif isinstance(decoded, FileComplete):
            await self._completions.file_complete(decoded, delivery)
        else:
            await self._completions.extraction_complete(data_type, decoded, delivery, self.topology)
        return 0

    async def _data(self, msg: DataMessage, delivery: AmqpDelivery) -> None:
        self._completions.data_arrived(msg.data_type)
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
