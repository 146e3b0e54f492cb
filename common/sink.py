"""The contract between the batching runtime and a service's database writer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from common.messages import ExtractionComplete, FileComplete
from common.records import DataType, Record


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one committed batch did: rows/nodes rewritten, and records whose hash matched."""

    written: int
    unchanged: int
    added: int = 0  # of ``written``: records the store did not hold before


class TransientWriteError(Exception):
    """The database could not take the batch now (down, restarting, deadlock): retried with
    backoff for as long as it takes, never dead-lettered."""


class BatchRejected(Exception):
    """The database refused the batch for a deterministic reason (bad data): the batch is
    split to isolate the records at fault; ``str(e)`` is the reason."""


class Writer(Protocol):
    """Writes batches of one data type; each call is one committed transaction.

    ``records`` never holds two records with the same id. Implementations map their
    driver's errors onto :class:`TransientWriteError` and :class:`BatchRejected`.
    """

    async def write(self, data_type: DataType, records: Sequence[Record]) -> WriteResult: ...

    async def file_complete(self, message: FileComplete) -> None:
        """Every record of the file is committed; run the type's completion work."""

    async def extraction_complete(
        self, data_type: DataType, message: ExtractionComplete, *, dead_letters: int
    ) -> int:
        """Every record of the run is committed: purge what the version lacks (when
        :mod:`common.purge` allows) and set the version held (:mod:`common.delta`).
        ``dead_letters``: the type's messages in the dead-letter queue. Returns the
        records deleted (0 when the purge was skipped)."""

    async def held_version(self, data_type: DataType) -> str | None:
        """The dump version the store fully holds for ``data_type`` (None: none)."""

    async def delete(self, data_type: DataType, ids: Sequence[str], *, version: str) -> int:
        """Remove the records ``ids`` (absent from ``version``) in one transaction; returns
        how many the store held. An id not held, or stored from ``version`` or a newer
        one, is left alone (a redelivered message deletes nothing more)."""
