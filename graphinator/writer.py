"""graphinator's database writer: the :class:`common.sink.Writer` for Neo4j.

Each batch is one managed write transaction (``session.execute_write``): the first
statement merges the batch's nodes and returns the ids whose hash changed, and only those
records get their owned edges replaced, in the same transaction (no read-then-write race
across transactions). Statements and rows come from :mod:`graphinator.cypher`; the model
is in docs/graph-model.md.

Errors: deadlocks and other transient server errors, an unreachable server and
configuration-level refusals (authentication, a missing database) are
:class:`TransientWriteError` (the runtime retries with backoff); any other client error
is the batch's fault and becomes :class:`BatchRejected` (the runtime splits the batch).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence

import structlog
from neo4j import AsyncDriver, AsyncManagedTransaction
from neo4j.exceptions import (
    ClientError,
    DatabaseError,
    Neo4jError,
    ServiceUnavailable,
    SessionExpired,
    TransientError,
)

from common.messages import ExtractionComplete, FileComplete
from common.records import DataType, Record
from common.sink import BatchRejected, TransientWriteError, WriteResult
from graphinator import cypher

log = structlog.get_logger(__name__)

# Client errors that say nothing about the batch: retrying (after an operator's fix) is
# right, dead-lettering good records is not.
_NOT_THE_DATA = (
    "Neo.ClientError.Security.",
    "Neo.ClientError.Database.",
    "Neo.ClientError.Cluster.",
)
_RETRYABLE = (TransientError, DatabaseError, ServiceUnavailable, SessionExpired, OSError)
_Work = Callable[[AsyncManagedTransaction], Awaitable[int]]


class Neo4jWriter:
    """Writes batches of normalised records as nodes and relationships (see module doc)."""

    def __init__(self, *, driver: AsyncDriver, database: str = "neo4j") -> None:
        self._driver = driver
        self._database = database

    async def setup(self) -> None:
        """Create the uniqueness constraints (idempotent: ``IF NOT EXISTS``)."""
        try:
            for statement in cypher.CONSTRAINTS:
                await self._driver.execute_query(statement, database_=self._database)
        except _RETRYABLE as e:
            raise TransientWriteError(f"neo4j schema setup failed: {e}") from e
        log.info("graph_schema_ready", constraints=len(cypher.CONSTRAINTS))

    async def write(self, data_type: DataType, records: Sequence[Record]) -> WriteResult:
        """Write one batch in one transaction; unchanged records (same hash) are skipped."""
        if not records:
            return WriteResult(written=0, unchanged=0)
        try:
            rows = cypher.node_rows(data_type, records)
        except ValueError as e:
            raise BatchRejected(str(e)) from e
        attempts = 0

        async def work(tx: AsyncManagedTransaction) -> int:
            nonlocal attempts
            attempts += 1
            if attempts > 1:  # the driver retries transient errors on its own
                log.warning(
                    "graph_write_retry", data_type=str(data_type), attempt=attempts, size=len(rows)
                )
            return await _write_batch(tx, data_type, rows, records)

        started = time.monotonic()
        written = await self._execute(data_type, work)
        log.debug(
            "graph_batch_written",
            data_type=str(data_type),
            written=written,
            unchanged=len(records) - written,
            attempts=attempts,
            seconds=round(time.monotonic() - started, 3),
        )
        return WriteResult(written=written, unchanged=len(records) - written)

    async def file_complete(self, message: FileComplete) -> None:
        """Nothing to finish: every batch is complete in itself (placeholders stay until
        their own record arrives)."""
        log.info("graph_file_complete", data_type=str(message.data_type), file=message.file)

    async def extraction_complete(
        self, data_type: DataType, message: ExtractionComplete, *, dead_letters: int
    ) -> int:
        log.info("graph_extraction_complete", data_type=str(data_type), version=message.version)
        return 0

    async def _execute(self, data_type: DataType, work: _Work) -> int:
        try:
            async with self._driver.session(database=self._database) as session:
                return await session.execute_write(work)
        except _RETRYABLE as e:
            log.warning("graph_write_transient", data_type=str(data_type), error=_describe(e))
            raise TransientWriteError(f"neo4j write failed: {_describe(e)}") from e
        except ClientError as e:
            if e.code is not None and e.code.startswith(_NOT_THE_DATA):
                log.error("graph_write_refused", data_type=str(data_type), error=_describe(e))
                raise TransientWriteError(f"neo4j refused the write: {_describe(e)}") from e
            log.warning("graph_batch_rejected", data_type=str(data_type), error=_describe(e))
            raise BatchRejected(f"neo4j rejected the batch: {_describe(e)}") from e


async def _write_batch(
    tx: AsyncManagedTransaction,
    data_type: DataType,
    rows: list[cypher.Row],
    records: Sequence[Record],
) -> int:
    result = await tx.run(cypher.MERGE_NODES[data_type], rows=rows)
    changed_ids = set(await result.value("id"))
    changed = [r for r in records if cypher.node_id(r.id) in changed_ids]
    for statement in cypher.link_statements(data_type, changed):
        result = await tx.run(statement.query, rows=statement.rows)
        await result.consume()
    return len(changed)


def _describe(e: Exception) -> str:
    if isinstance(e, Neo4jError) and e.code:
        return f"{e.code}: {e.message}"
    return f"{type(e).__name__}: {e}"
