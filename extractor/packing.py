"""Records into message bodies: batches close at a record count or a byte cap.

A batch message closes at ``batch_size`` records or before it would pass
``max_message_bytes``, whichever comes first; a record larger than the cap on its own goes
in a message of its own. No message may pass ``limit``, the size the consumers accept
(``AMQP_MAX_MESSAGE_BYTES``): a record whose message would is a :class:`RecordTooLarge`
naming it, raised before anything of it is sent, instead of a message the consumers would
dead-letter unread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from common.records import DataType, Record
from extractor.envelopes import BATCH_TAIL, batch_head, data_body, wire_record
from extractor.xmlparse import DumpError

DEFAULT_MAX_MESSAGE_BYTES = 8 * 1024 * 1024
DEFAULT_LIMIT = 16 * 1024 * 1024  # the consumers' default AMQP_MAX_MESSAGE_BYTES


class RecordTooLarge(DumpError):
    """A single record whose message would pass the size the consumers accept.

    ``before``: the bodies of the ``records_before`` records before it in the same call,
    to be sent (as everything before a break in a file is) before the error stops the run.
    """

    def __init__(
        self, message: str, before: list[bytes] | None = None, records_before: int = 0
    ) -> None:
        super().__init__(message)
        self.before = before or []
        self.records_before = records_before


@dataclass(frozen=True, slots=True)
class Packing:
    """How records become messages; ``single``: one data message per record."""

    single: bool = False
    batch_size: int = 500
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    limit: int = DEFAULT_LIMIT
    # The manifest's version when the records are a delta over it (None: a full publish).
    base_version: str | None = None

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.max_message_bytes < 1:
            raise ValueError("batch_size and max_message_bytes must be at least 1")
        if self.max_message_bytes > self.limit:
            raise ValueError(
                f"max_message_bytes ({self.max_message_bytes}) is above the consumers' "
                f"limit ({self.limit}): batches would be dead-lettered"
            )


@dataclass(frozen=True, slots=True)
class Where:
    """Where records come from, for error messages: the file and the first one's number."""

    file: str
    first_index: int = 1
    # Each record's number, when they are not consecutive (a delta's chosen records).
    numbers: list[int] | None = None

    def number(self, index: int) -> int:
        return self.numbers[index] if self.numbers is not None else self.first_index + index


def pack(
    data_type: DataType,
    version: str,
    records: Sequence[Record],
    packing: Packing,
    where: Where,
) -> list[bytes]:
    """The message bodies carrying ``records`` (every one of them, in order)."""
    if packing.single:
        bodies = [data_body(version, r, packing.base_version) for r in records]
        for index, (record, body) in enumerate(zip(records, bodies, strict=True)):
            _check(
                len(body), record, index=index, packing=packing, where=where, before=bodies[:index]
            )
        return bodies
    return _batches(data_type, version, records, packing, where)


def _batches(
    data_type: DataType,
    version: str,
    records: Sequence[Record],
    packing: Packing,
    where: Where,
) -> list[bytes]:
    head = batch_head(data_type, version, packing.base_version)
    empty = len(head) + len(BATCH_TAIL)
    bodies: list[bytes] = []
    items: list[bytes] = []
    size = empty
    for index, record in enumerate(records):
        item = wire_record(record)
        grown = size + len(item) + (1 if items else 0)  # the comma before it
        if items and (len(items) >= packing.batch_size or grown > packing.max_message_bytes):
            bodies.append(head + b",".join(items) + BATCH_TAIL)
            items, grown = [], empty + len(item)
        if not items:
            _check(grown, record, index=index, packing=packing, where=where, before=bodies)
        items.append(item)
        size = grown
    if items:
        bodies.append(head + b",".join(items) + BATCH_TAIL)
    return bodies


def _check(
    size: int, record: Record, *, index: int, packing: Packing, where: Where, before: list[bytes]
) -> None:
    """``index``: the record's position in this call (the records before it are sent)."""
    if size > packing.limit:
        raise RecordTooLarge(
            f"{where.file}: record #{where.number(index)} (id {record.id}) "
            f"makes a message of {size} bytes, "
            f"over the {packing.limit} bytes the consumers accept (AMQP_MAX_MESSAGE_BYTES); "
            "raise that limit on the consumers, the extractor and the broker to send it",
            before,
            index,
        )
