"""Decoding of AMQP message bodies into typed messages (wire contract: docs/wire-format.md).

Pure: no I/O. Anything that can never be processed raises :class:`InvalidMessage` with a
reason short enough for a header and a log line. A batch message whose envelope is sound
but some of whose records are not yields those records as :class:`RejectedRecord` so the
good ones still load.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from common.normalise import normalise
from common.records import DataType, InvalidRecord, Record

_DUMP_VERSION_RE = re.compile(r"[0-9]{8}")
_VERSION_RE = re.compile(r"discogs_([0-9]{8})_")


class InvalidMessage(ValueError):
    """A message body that can never be processed; ``str(e)`` is the reason."""


@dataclass(frozen=True, slots=True)
class RejectedRecord:
    """A record inside a batch message that failed normalisation."""

    index: int
    reason: str
    raw: object


@dataclass(frozen=True, slots=True)
class DataMessage:
    """One record (a data message) or many (a batch message) of one data type."""

    data_type: DataType
    records: list[Record]
    rejected: list[RejectedRecord] = field(default_factory=list)
    is_batch: bool = False


@dataclass(frozen=True, slots=True)
class FileComplete:
    data_type: DataType
    file: str
    total_processed: int | None
    version: str | None


@dataclass(frozen=True, slots=True)
class ExtractionComplete:
    version: str | None
    record_counts: dict[str, int]


Message = DataMessage | FileComplete | ExtractionComplete


def decode(data_type: DataType, body: bytes, *, max_bytes: int) -> Message:
    """Decode a body received on ``data_type``'s queue."""
    if len(body) > max_bytes:
        raise InvalidMessage(f"message of {len(body)} bytes exceeds the limit of {max_bytes}")
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        kind = "not UTF-8" if _not_utf8(body) else "not JSON"
        raise InvalidMessage(f"body is {kind}: {e}") from e
    if not isinstance(obj, dict):
        raise InvalidMessage(f"body must be a JSON object, got {type(obj).__name__}")
    msg_type: object = obj.get("type")
    if msg_type is None:  # absent (older producers) or null: a data message
        msg_type = "data"
    if msg_type == "data":
        return _data(data_type, obj)
    if msg_type == "batch":
        return _batch(data_type, obj)
    if msg_type == "file_complete":
        return _file_complete(data_type, obj)
    if msg_type == "extraction_complete":
        return _extraction_complete(obj)
    raise InvalidMessage(f"unknown message type {str(msg_type)[:40]!r}")


def dump_version(file_name: str) -> str | None:
    """The dump version (``YYYYMMDD``) in a file name such as ``discogs_20260301_artists``."""
    m = _VERSION_RE.search(file_name)
    return m.group(1) if m else None


def _not_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _data(data_type: DataType, obj: dict[str, Any]) -> DataMessage:
    try:
        record = normalise(data_type, obj, version=_version(obj.get("version")))
    except InvalidRecord as e:
        raise InvalidMessage(str(e)) from e
    return DataMessage(data_type, [record])


def _version(version: object) -> str | None:
    """The dump version a message or record names, if it is one (YYYYMMDD)."""
    if isinstance(version, str) and _DUMP_VERSION_RE.fullmatch(version):
        return version
    return None


def _batch(data_type: DataType, obj: dict[str, Any]) -> DataMessage:
    _check_type(data_type, obj)
    raw = obj.get("records")
    if not isinstance(raw, list):
        raise InvalidMessage("batch message has no 'records' list")
    records: list[Record] = []
    rejected: list[RejectedRecord] = []
    envelope_version = _version(obj.get("version"))
    for i, item in enumerate(raw):
        try:
            own = _version(item.get("version")) if isinstance(item, dict) else None
            records.append(normalise(data_type, item, version=own or envelope_version))
        except InvalidRecord as e:
            rejected.append(RejectedRecord(i, str(e), item))
    return DataMessage(data_type, records, rejected, is_batch=True)


def _file_complete(data_type: DataType, obj: dict[str, Any]) -> FileComplete:
    _check_type(data_type, obj)
    file = obj.get("file")
    file_name = file if isinstance(file, str) else ""
    total = obj.get("total_processed")
    version = obj.get("version")
    return FileComplete(
        data_type,
        file_name,
        total if isinstance(total, int) and not isinstance(total, bool) else None,
        version if isinstance(version, str) else dump_version(file_name),
    )


def _extraction_complete(obj: dict[str, Any]) -> ExtractionComplete:
    version = obj.get("version")
    counts = obj.get("record_counts")
    clean = {}
    if isinstance(counts, dict):
        clean = {
            str(k): v
            for k, v in counts.items()
            if isinstance(v, int) and not isinstance(v, bool) and v >= 0
        }
    return ExtractionComplete(version if isinstance(version, str) else None, clean)


def _check_type(data_type: DataType, obj: dict[str, Any]) -> None:
    declared = obj.get("data_type")
    if declared is not None and declared != data_type.value:
        raise InvalidMessage(f"data_type {str(declared)[:20]!r} arrived on the {data_type} queue")
