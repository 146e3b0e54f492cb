"""tableinator's COPY rows: records turned into the rows :mod:`tableinator.sql` stages and
merges, with the checks that refuse a record PostgreSQL could never store. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

import orjson

from common.records import DataType, Record, release_year
from common.sink import BatchRejected
from tableinator.sql import SPECS, TableSpec

# A btree entry must fit in about a third of a page (2,704 bytes); lower() can lengthen
# UTF-8 text. Refusing longer indexed text up front keeps a bulk-load index rebuild from
# failing on a row that was accepted while the indexes were dropped.
MAX_INDEXED_TEXT_BYTES: Final = 1800
# A dump version as stamped on records: YYYYMMDD, so text order is chronological order.
_VERSION_RE: Final = re.compile(r"[0-9]{8}")

# One COPY row: data_id, hash, data (JSON already encoded by orjson), version[, year].
Row = tuple[str, str, bytes, str | None] | tuple[str, str, bytes, str | None, int | None]


def slim_record(data_type: DataType, record: Record) -> Record:
    """The part of ``record`` the writer reads, for records decoded on a worker process:
    the canonical JSON (stored whole) and the fields of the ``year`` column and the index
    checks. A record without its canonical JSON is kept whole."""
    if record.encoded is None:
        return record
    spec = SPECS[data_type]
    wanted = (*spec.indexed_text, spec.year_source) if spec.year_source else spec.indexed_text
    return record.with_data({k: record.data[k] for k in wanted if k in record.data})


def build_rows(spec: TableSpec, records: Sequence[Record]) -> list[Row]:
    """COPY rows for ``records``; of two records with one id the later wins.

    Raises :class:`BatchRejected` naming the first record that can never be stored.
    """
    latest = {record.id: record for record in records}
    return [_row(spec, record) for record in latest.values()]


def _row(spec: TableSpec, record: Record) -> Row:
    encoded = record.encoded  # the normaliser's serialisation, when the record came from it
    if encoded is None:
        try:
            encoded = orjson.dumps(record.data)
        except orjson.JSONEncodeError as e:
            raise BatchRejected(f"record {record.id}: data cannot be encoded as JSON: {e}") from e
    _check_text(record.id, "sha256", record.sha256)
    if record.version is not None and not _VERSION_RE.fullmatch(record.version):
        raise BatchRejected(f"record {record.id}: version {record.version[:20]!r} is not YYYYMMDD")
    for field in spec.indexed_text:
        value = record.data.get(field)
        if isinstance(value, str):  # orjson already refused text that is not Unicode
            _check_indexable(record.id, field, value)
    if spec.year_source is None:
        return (record.id, record.stored_hash, encoded, record.version)
    year = release_year(record.data.get(spec.year_source))
    return (record.id, record.stored_hash, encoded, record.version, year)


def _check_text(record_id: str, field: str, value: str) -> None:
    try:
        value.encode()
    except UnicodeEncodeError as e:
        raise BatchRejected(f"record {record_id}: {field} is not valid Unicode: {e}") from e


def _check_indexable(record_id: str, field: str, value: str) -> None:
    size = max(len(value.encode()), len(value.lower().encode()))
    if size > MAX_INDEXED_TEXT_BYTES:
        raise BatchRejected(
            f"record {record_id}: {field} is {size} bytes, longer than the"
            f" {MAX_INDEXED_TEXT_BYTES} an index entry can hold"
        )
