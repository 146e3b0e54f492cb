"""Writes one batch through the service's :class:`~common.sink.Writer` until it has ended.

Transient failures are retried with backoff for as long as it takes (an outage is waited
out, never dead-lettered); a batch the database rejects is split in halves until the bad
records are isolated and rejected, and the rest commits.
"""

from __future__ import annotations

import structlog

from common.clock import Clock
from common.metrics import Metrics
from common.records import DataType
from common.sink import BatchRejected, TransientWriteError, Writer, WriteResult
from common.tickets import Item
from common.waiting import retried

log = structlog.get_logger(__name__)


class BatchWriter:
    """Wraps a :class:`~common.sink.Writer`: retries, splitting, the batch log line."""

    def __init__(self, writer: Writer, *, metrics: Metrics, service: str, clock: Clock) -> None:
        self._writer = writer
        self._metrics = metrics
        self._service = service
        self._clock = clock

    async def write(self, data_type: DataType, items: list[Item]) -> None:
        """Commit ``items``; a record the database rejects goes on its ticket's rejections."""
        try:
            await self._write_with_retry(data_type, items)
        except BatchRejected as e:
            if len(items) == 1:
                record = items[0].record
                log.warning(
                    "record rejected",
                    service=self._service,
                    data_type=data_type.value,
                    record_id=record.id,
                    reason=str(e),
                )
                items[0].ticket.reject(record, str(e))
                return
            log.info("batch split", data_type=data_type.value, size=len(items), reason=str(e))
            half = len(items) // 2
            await self.write(data_type, items[:half])
            await self.write(data_type, items[half:])

    async def _write_with_retry(self, data_type: DataType, items: list[Item]) -> None:
        records = [i.record for i in items]

        async def timed() -> tuple[WriteResult, float]:
            started = self._clock.now()
            result = await self._writer.write(data_type, records)
            return result, self._clock.now() - started

        result, seconds = await retried(
            timed,
            errors=(TransientWriteError,),
            event="write retry",
            sleep=self._clock.sleep,
            on_retry=lambda: self._metrics.record_retry(data_type),
            service=self._service,
            data_type=data_type.value,
        )
        self._log_batch(data_type, len(records), result, seconds)

    def _log_batch(
        self, data_type: DataType, size: int, result: WriteResult, seconds: float
    ) -> None:
        written, unchanged = result.written, result.unchanged
        self._metrics.record_batch(
            data_type, written=written, unchanged=unchanged, seconds=seconds, added=result.added
        )
        stats = self._metrics.types[data_type]
        log.info(
            "Batch processed",
            service=self._service,
            data_type=data_type.value,
            batch_size=size,
            duration_ms=round(seconds * 1000, 1),
            records_per_sec=round(size / seconds, 1) if seconds > 0 else None,
            written=written,
            unchanged=unchanged,
            total=stats.written + stats.unchanged,
            overall_records_per_sec=round(stats.rate(), 1),
        )
