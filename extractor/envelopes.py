"""The message bodies the extractor publishes (wire contract: docs/wire-format.md).

Pure: no I/O. Every body is UTF-8 JSON serialised by orjson.

- batch (ours): ``{"type": "batch", "data_type", "version", "records": [{...data, "sha256"}]}``
- data: ``{"type": "data", "id", "sha256", ...fields, "version"}``
- file_complete: ``{"type", "data_type", "file", "version", "total_processed", "timestamp"}``
- extraction_complete: ``{"type", "version", "timestamp", "started_at", "record_counts"}``
- delete (a delta): ``{"type": "delete", "data_type", "version", "base_version", "ids"}``

Every message of a delta carries ``base_version`` after ``version``; its file_complete
the ``counts`` as well, and extraction_complete names the deltas' ``base_versions``.
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


def batch_head(data_type: DataType, version: str, base_version: str | None = None) -> bytes:
    """A batch body up to its first record: ``head + b",".join(items) + BATCH_TAIL`` is
    byte for byte what :func:`batch_body` makes of the same records."""
    empty = batch_body(data_type, version, [], base_version)
    return empty[: -len(BATCH_TAIL)]


def _base(base_version: str | None) -> dict[str, str]:
    return {} if base_version is None else {"base_version": base_version}


BATCH_TAIL = b"]}"


def batch_body(
    data_type: DataType, version: str, records: Sequence[Record], base_version: str | None = None
) -> bytes:
    """One batch message holding ``records`` (each shaped as a data message without type)."""
    return orjson.dumps(
        {
            "type": "batch",
            "data_type": data_type.value,
            "version": version,
            **_base(base_version),
            "records": [_wire_record(r) for r in records],
        }
    )


def data_body(version: str, record: Record, base_version: str | None = None) -> bytes:
    """One data message: a single record, ``id`` first as in the existing producers."""
    return orjson.dumps(
        {
            "type": "data",
            "id": record.id,
            "sha256": record.sha256,
            **record.data,
            "version": version,
            **_base(base_version),
        }
    )


def delete_body(data_type: DataType, version: str, base_version: str, ids: Sequence[str]) -> bytes:
    """The ids of a delta's records that the new version no longer holds."""
    return orjson.dumps(
        {
            "type": "delete",
            "data_type": data_type.value,
            "version": version,
            "base_version": base_version,
            "ids": list(ids),
        }
    )


def delete_bodies(
    data_type: DataType, version: str, base_version: str, ids: Sequence[str], max_bytes: int
) -> list[bytes]:
    """``ids`` in delete messages of at most ``max_bytes`` each."""
    body = delete_body(data_type, version, base_version, ids)
    if len(body) <= max_bytes or len(ids) < 2:
        return [body]
    half = len(ids) // 2
    return delete_bodies(data_type, version, base_version, ids[:half], max_bytes) + delete_bodies(
        data_type, version, base_version, ids[half:], max_bytes
    )


def file_complete_body(
    data_type: DataType,
    file: str,
    version: str,
    total: int,
    *,
    base_version: str | None = None,
    counts: Mapping[str, int] | None = None,
) -> bytes:
    """``base_version`` and ``counts`` (added, changed, unchanged, deleted): a delta's."""
    delta: dict[str, object] = {}
    if base_version is not None:
        delta = {"base_version": base_version, "counts": dict(counts or {})}
    return orjson.dumps(
        {
            "type": "file_complete",
            "data_type": data_type.value,
            "file": file,
            "version": version,
            "total_processed": total,
            "timestamp": timestamp(),
            **delta,
        }
    )


def extraction_complete_body(
    version: str,
    started_at: datetime,
    record_counts: Mapping[DataType, int],
    base_versions: Mapping[DataType, str] | None = None,
) -> bytes:
    """``base_versions``: the types sent as a delta, each with its manifest's version."""
    delta = (
        {"base_versions": {t.value: v for t, v in base_versions.items()}} if base_versions else {}
    )
    return orjson.dumps(
        {
            "type": "extraction_complete",
            "version": version,
            "timestamp": timestamp(),
            "started_at": timestamp(started_at),
            "record_counts": {t.value: n for t, n in record_counts.items()},
            **delta,
        }
    )
