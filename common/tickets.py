"""A delivery's records on their way to the database, and what settles the delivery.

A :class:`Ticket` follows one delivery (one AMQP message, one or many records); each of
its records travels as an :class:`Item`. The delivery is settled once every item has
ended: written, or rejected with a reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import orjson

from common.records import DataType, Record


@dataclass(frozen=True, slots=True)
class Rejection:
    """A record that will not be stored: why, and the record's own wire body if it has one."""

    reason: str
    body: bytes | None = None


class Delivery(Protocol):
    """One received message. :meth:`settle` is called exactly once per delivery."""

    async def settle(self, rejections: Sequence[Rejection]) -> None:
        """Ack; first dead-letter each rejection (all of the message when ``body`` is None)."""


@dataclass(slots=True)
class Ticket:
    """One delivery and how many of its records are still to be written."""

    delivery: Delivery
    data_type: DataType
    remaining: int
    size: int
    # A message of many records: a record rejected later is dead-lettered on its own.
    batch: bool
    rejections: list[Rejection] = field(default_factory=list)

    @staticmethod
    def completed_by(written: list[Item]) -> list[Ticket]:
        """Count ``written`` as ended; the tickets none of whose records remain."""
        done = []
        for item in written:
            item.ticket.remaining -= 1
            if item.ticket.remaining == 0:
                done.append(item.ticket)
        return done

    def reject(self, record: Record, reason: str) -> None:
        """``record`` will not be stored; a batch message keeps its other records."""
        body = _record_body(record) if self.batch else None
        self.rejections.append(Rejection(reason, body))


@dataclass(frozen=True, slots=True)
class Item:
    """One record, the ticket of the delivery it came in, and when it arrived."""

    record: Record
    ticket: Ticket
    added: float


def _record_body(record: Record) -> bytes:
    """A record's own wire body (data message shape), for dead-lettering it alone.

    Built from the canonical JSON when the record has it: a record decoded on a worker
    process may carry only part of ``data`` (see :mod:`common.decoding`).
    """
    data = orjson.loads(record.encoded) if record.encoded is not None else record.data
    return orjson.dumps({**data, "sha256": record.sha256})
