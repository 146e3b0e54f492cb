"""The message bodies the extractor publishes (wire contract: docs/wire-format.md).

Pure: no I/O. Every body is UTF-8 JSON serialised by orjson.

- batch (ours): ``{"type": "batch", "data_type", "version", "records": [{...data, "sha256"}]}``
- data: ``{"type": "data", "id", "sha256", ...fields, "version"}``
- file_complete: ``{"type", "data_type", "file", "version", "total_processed", "timestamp"}``
- extraction_complete: ``{"type", "version", "timestamp", "started_at", "record_counts"}``
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from common.records import DataType, Record


def timestamp(moment: datetime | None = None) -> str:
    """ISO 8601 in UTC with milliseconds and a ``Z``: ``2026-03-05T12:45:23.456Z``."""
    moment = moment or datetime.now(UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _wire_record(record: Record) -> dict[str, Any]:
    return {**record.data, "sha256": record.sha256}


def wire_record(record: Record) -> bytes:
    """One item of a batch's ``records`` list, serialised on its own (to be sized)."""
    return orjson.dumps(_wire_record(record))


def batch_head(data_type: DataType, version: str) -> bytes:
    """A batch body up to its first record: ``head + b",".join(items) + BATCH_TAIL`` is
    byte for byte what :func:`batch_body` makes of the same records."""
    empty = batch_body(data_type, version, [])
    return empty[: -len(BATCH_TAIL)]


BATCH_TAIL = b"]}"


def batch_body(data_type: DataType, version: str, records: Sequence[Record]) -> bytes:
    """One batch message holding ``records`` (each shaped as a data message without type)."""
    return orjson.dumps(
        {
            "type": "batch",
            "data_type": data_type.value,
            "version": version,
            "records": [_wire_record(r) for r in records],
        }
    )


def data_body(version: str, record: Record) -> bytes:
    """One data message: a single record, ``id`` first as in the existing producers."""
    return orjson.dumps(
        {
            "type": "data",
            "id": record.id,
            "sha256": record.sha256,
            **record.data,
            "version": version,
        }
    )


def file_complete_body(data_type: DataType, file: str, version: str, total: int) -> bytes:
    return orjson.dumps(
        {
            "type": "file_complete",
            "data_type": data_type.value,
            "file": file,
            "version": version,
            "total_processed": total,
            "timestamp": timestamp(),
        }
    )


def extraction_complete_body(
    version: str, started_at: datetime, record_counts: Mapping[DataType, int]
) -> bytes:
    return orjson.dumps(
        {
            "type": "extraction_complete",
            "version": version,
            "timestamp": timestamp(),
            "started_at": timestamp(started_at),
            "record_counts": {t.value: n for t, n in record_counts.items()},
        }
    )
