"""The monthly-update purge: delete what the new dump no longer holds, when it is safe.

:class:`Purger` gathers the facts :func:`common.purge.decide` needs (the file_complete
version persisted in ``tableinator_state``, the dead-letter depth given by the runtime,
the counts of stamped and stored rows), logs every refusal, and deletes in chunks of one
transaction each. A crash part-way leaves only whole chunks done; the redelivered
``extraction_complete`` decides again (fewer rows are left to delete, so it still passes)
and finishes. Statements: :mod:`tableinator.updates`.
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from psycopg import AsyncCursor

from common.purge import LoadFacts, PurgeDecision, decide
from common.records import DataType
from tableinator import sql, updates
from tableinator.pool import Transaction

log = structlog.get_logger(__name__)


class Purger:
    """Runs a type's purge through ``transaction`` (a cursor inside one transaction)."""

    def __init__(self, transaction: Transaction, *, veto_fraction: float, chunk_size: int) -> None:
        if not 0 <= veto_fraction <= 1:
            raise ValueError(f"purge_veto_fraction must be within [0, 1]; got {veto_fraction}")
        if chunk_size < 1:
            raise ValueError(f"purge_chunk_size must be positive; got {chunk_size}")
        self._transaction = transaction
        self._veto_fraction = veto_fraction
        self._chunk_size = chunk_size

    async def file_complete(self, data_type: DataType, version: str | None) -> None:
        """Remember that ``version``'s file of ``data_type`` arrived whole."""
        if version is None:
            log.warning("file_complete without version", data_type=data_type.value)
            return
        async with self._transaction() as cur:
            await cur.execute(updates.SET_FILE_COMPLETE, (data_type.value, version))

    async def purge(
        self, data_type: DataType, version: str | None, *, dead_letters: int
    ) -> int | None:
        """Delete the rows of ``data_type`` not seen in ``version`` if allowed; how many went
        (None: the purge was refused)."""
        facts = await self._facts(data_type, version, dead_letters)
        decision = decide(facts, veto_fraction=self._veto_fraction)
        if not decision.allowed or version is None:  # decide() refuses a missing version
            _log_skipped(data_type, facts, decision)
            return None
        started = time.perf_counter()
        deleted = await self._delete(sql.SPECS[data_type], version)
        log.info(
            "purge done",
            data_type=data_type.value,
            version=version,
            deleted=deleted,
            seen=facts.seen,
            stored_before=facts.stored,
            duration_ms=round((time.perf_counter() - started) * 1000),
        )
        return deleted

    async def _facts(
        self, data_type: DataType, version: str | None, dead_letters: int
    ) -> LoadFacts:
        spec = sql.SPECS[data_type]
        async with self._transaction() as cur:
            await cur.execute(updates.READ_FILE_COMPLETE, (data_type.value,))
            row = await cur.fetchone()
            completed = row[0] if row else None
            if version is None:
                return LoadFacts(None, False, dead_letters, 0, 0)
            await cur.execute(updates.count_seen(spec), (version,))
            seen = await _count(cur)
            await cur.execute(updates.count_stored(spec))
            stored = await _count(cur)
        return LoadFacts(version, completed == version, dead_letters, seen, stored)

    async def _delete(self, spec: sql.TableSpec, version: str) -> int:
        """Span after span of ids, each its own transaction, until no id is left to examine."""
        statement = updates.purge_chunk(spec)
        deleted, after = 0, ""
        while True:
            params = {"version": version, "after": after, "limit": self._chunk_size}
            async with self._transaction() as cur:
                await cur.execute(sql.ADVISORY_LOCK, (spec.purge_lock_key,))
                await cur.execute(statement, params)  # a snapshot taken once it holds the lock
                row = await cur.fetchone()
            deleted += int(row[0]) if row else 0
            if row is None or row[1] is None:  # nothing left after ``after``
                return deleted
            after = str(row[1])
            log.debug("purge chunk", data_type=spec.data_type.value, deleted=deleted, after=after)


async def _count(cur: AsyncCursor[Any]) -> int:
    row = await cur.fetchone()
    return int(row[0]) if row else 0


def _log_skipped(data_type: DataType, facts: LoadFacts, decision: PurgeDecision) -> None:
    log.warning(
        "purge skipped",
        data_type=data_type.value,
        version=facts.version,
        reason=decision.reason,
        file_complete_seen=facts.file_complete_seen,
        dead_letters=facts.dead_letters,
        seen=facts.seen,
        stored=facts.stored,
        would_delete=decision.to_delete,
    )
