"""Decoding of AMQP message bodies into typed messages (wire contract: docs/wire-format.md).

Pure: no I/O. Anything that can never be processed raises :class:`InvalidMessage` with a
reason short enough for a header and a log line. A batch message whose envelope is sound
but some of whose records are not yields those records as :class:`RejectedRecord` so the
good ones still load. A message of a delta names its ``base_version`` (the version the
store must hold for it to apply); a malformed one makes the message invalid.
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
    base_version: str | None = None  # set: a delta's records, applied only over that version


@dataclass(frozen=True, slots=True)
class Deletion:
    """A delta's deletions: the records ``ids`` are absent from ``version``."""

    data_type: DataType
    ids: list[str]
    version: str
    base_version: str


@dataclass(frozen=True, slots=True)
class FileComplete:
    data_type: DataType
    file: str
    total_processed: int | None
    version: str | None
    base_version: str | None = None  # set: the file was published as a delta
    counts: dict[str, int] | None = None  # a delta's added, changed, unchanged, deleted


@dataclass(frozen=True, slots=True)
class ExtractionComplete:
    version: str | None
    record_counts: dict[str, int]
    # The types this run sent as a delta, each with its base version.
    base_versions: dict[str, str] = field(default_factory=dict)

    def delta_base(self, data_type: DataType) -> str | None:
        """The base version ``data_type`` was sent as a delta from; None: sent in full."""
        return self.base_versions.get(data_type.value)


Message = DataMessage | Deletion | FileComplete | ExtractionComplete


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
    if msg_type == "delete":
        return _deletion(data_type, obj)
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
    base = _base_version(obj)
    if base is not None:  # an envelope key, not a field of the record
        obj = {k: v for k, v in obj.items() if k != "base_version"}
    try:
        record = normalise(data_type, obj, version=_version(obj.get("version")))
    except InvalidRecord as e:
        raise InvalidMessage(str(e)) from e
    return DataMessage(data_type, [record], base_version=base)


def _version(version: object) -> str | None:
    """The dump version a message or record names, if it is one (YYYYMMDD)."""
    if isinstance(version, str) and _DUMP_VERSION_RE.fullmatch(version):
        return version
    return None


def _base_version(obj: dict[str, Any]) -> str | None:
    """The message's ``base_version``: None when absent (a full publish); a malformed one
    makes the message invalid (applying it as a full publish would be wrong)."""
    base = obj.get("base_version")
    if base is None:
        return None
    if not isinstance(base, str) or not _DUMP_VERSION_RE.fullmatch(base):
        raise InvalidMessage(f"base_version must be a dump version (YYYYMMDD): {str(base)[:40]!r}")
    return base


def _batch(data_type: DataType, obj: dict[str, Any]) -> DataMessage:
    base = _envelope(data_type, obj)
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
    return DataMessage(data_type, records, rejected, is_batch=True, base_version=base)


def _deletion(data_type: DataType, obj: dict[str, Any]) -> Deletion:
    base = _envelope(data_type, obj)
    version = _version(obj.get("version"))
    if base is None or version is None:
        raise InvalidMessage("delete message needs a version and a base_version (YYYYMMDD)")
    raw = obj.get("ids")
    if not isinstance(raw, list):
        raise InvalidMessage("delete message has no 'ids' list")
    return Deletion(
        data_type, [_delete_id(data_type, i, item) for i, item in enumerate(raw)], version, base
    )


def _delete_id(data_type: DataType, index: int, raw: object) -> str:
    """An id of a delete message, canonical by the records' own rule (common.normalise)."""
    if isinstance(raw, str | int) and not isinstance(raw, bool):
        try:
            return normalise(data_type, {"id": raw}).id
        except InvalidRecord:
            pass
    raise InvalidMessage(f"ids[{index}] is not a Discogs id (decimal digits): {str(raw)[:40]!r}")


def _file_complete(data_type: DataType, obj: dict[str, Any]) -> FileComplete:
    base = _envelope(data_type, obj)
    file = obj.get("file")
    file_name = file if isinstance(file, str) else ""
    total = obj.get("total_processed")
    version = obj.get("version")
    return FileComplete(
        data_type,
        file_name,
        total if isinstance(total, int) and not isinstance(total, bool) else None,
        version if isinstance(version, str) else dump_version(file_name),
        base,
        _counts(obj.get("counts")) if base is not None else None,
    )


def _extraction_complete(obj: dict[str, Any]) -> ExtractionComplete:
    version = obj.get("version")
    bases = obj.get("base_versions")
    if bases is not None and not isinstance(bases, dict):
        raise InvalidMessage("base_versions must be an object of data type to version")
    # A malformed base makes the message invalid: taken for a full publish, the type would
    # be purged of every record the delta did not carry.
    clean_bases = (
        {str(name): _base_version({"base_version": base}) or "" for name, base in bases.items()}
        if isinstance(bases, dict)
        else {}
    )
    return ExtractionComplete(
        version if isinstance(version, str) else None,
        _counts(obj.get("record_counts")),
        {name: base for name, base in clean_bases.items() if base},
    )


def _counts(counts: object) -> dict[str, int]:
    """The non-negative integer entries of a counts object (others are ignored)."""
    if not isinstance(counts, dict):
        return {}
    return {
        str(k): v
        for k, v in counts.items()
        if isinstance(v, int) and not isinstance(v, bool) and v >= 0
    }


def _envelope(data_type: DataType, obj: dict[str, Any]) -> str | None:
    """The base version of a message whose declared data type (if any) is the queue's."""
    declared = obj.get("data_type")
    if declared is not None and declared != data_type.value:
        raise InvalidMessage(f"data_type {str(declared)[:20]!r} arrived on the {data_type} queue")
    return _base_version(obj)
