"""graphinator's database writer: the :class:`common.sink.Writer` for Neo4j.

Each batch is one managed write transaction (``session.execute_write``): the first
statement merges the batch's nodes (hash gate and version order, see
:data:`graphinator.cypher.GATE`) and returns the records that changed, and only those
get their properties written and their owned edges replaced, in the same transaction (no
read-then-write race across transactions); the placeholders and tags those removed edges
leave unreferenced are deleted at the end, and the placeholders they leave referenced
renamed from the references left. Unchanged records only have their ``seen`` version
moved forward. Statements are in :mod:`graphinator.cypher`, rows in
:mod:`graphinator.rows`, the purge of records absent from a new version in
:mod:`graphinator.purge`, the version held and a delta's deletions in
:mod:`graphinator.delta`, error mapping in :mod:`graphinator.errors`; the model is in
docs/graph-model.md.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import structlog
from neo4j import AsyncDriver, AsyncManagedTransaction

from common.delta import held_after_full
from common.messages import ExtractionComplete, FileComplete
from common.purge import DEFAULT_VETO_FRACTION, decide
from common.records import DataType, Record
from common.sink import BatchRejected, TransientWriteError, WriteResult
from graphinator import cypher, delta, purge, rows
from graphinator.errors import RETRYABLE, describe, execute_write

log = structlog.get_logger(__name__)


class Neo4jWriter:
    """Writes batches of normalised records as nodes and relationships (see module doc)."""

    def __init__(
        self,
        *,
        driver: AsyncDriver,
        database: str = "neo4j",
        purge_veto_fraction: float = DEFAULT_VETO_FRACTION,
        purge_chunk: int = purge.DEFAULT_CHUNK,
    ) -> None:
        self._driver = driver
        self._database = database
        self._veto_fraction = purge_veto_fraction
        self._purge_chunk = purge_chunk

    async def setup(self) -> None:
        """Create the uniqueness constraints (idempotent: ``IF NOT EXISTS``)."""
        try:
            for statement in cypher.CONSTRAINTS:
                await self._driver.execute_query(statement, database_=self._database)
        except RETRYABLE as e:
            raise TransientWriteError(f"neo4j schema setup failed: {describe(e)}") from e
        log.info("graph_schema_ready", constraints=len(cypher.CONSTRAINTS))

    async def write(self, data_type: DataType, records: Sequence[Record]) -> WriteResult:
        """Write one batch in one transaction; unchanged records (same hash) are skipped."""
        if not records:
            return WriteResult(written=0, unchanged=0)
        try:
            gate = rows.gate_rows(records)
        except ValueError as e:
            raise BatchRejected(str(e)) from e
        attempts = 0

        async def work(tx: AsyncManagedTransaction) -> tuple[int, int]:
            nonlocal attempts
            attempts += 1
            if attempts > 1:  # the driver retries transient errors on its own
                log.warning(
                    "graph_write_retry",
                    data_type=str(data_type),
                    attempt=attempts,
                    size=len(gate),
                )
            return await write_batch(tx, data_type, gate, records)

        started = time.monotonic()
        written, added = await execute_write(self._driver, self._database, data_type, work)
        log.debug(
            "graph_batch_written",
            data_type=str(data_type),
            written=written,
            added=added,
            unchanged=len(records) - written,
            attempts=attempts,
            seconds=round(time.monotonic() - started, 3),
        )
        return WriteResult(written=written, unchanged=len(records) - written, added=added)

    async def file_complete(self, message: FileComplete) -> None:
        """Record in the graph that the type's file of ``message.version`` is complete (the
        purge requires it); every batch is complete in itself."""
        dt = str(message.data_type)
        if message.version is None:
            log.warning("graph_file_complete_unversioned", data_type=dt, file=message.file)
            return

        async def work(tx: AsyncManagedTransaction) -> None:
            result = await tx.run(cypher.FILE_COMPLETE_SET, data_type=dt, version=message.version)
            await result.consume()

        await execute_write(self._driver, self._database, message.data_type, work)
        log.info("graph_file_complete", data_type=dt, file=message.file, version=message.version)

    async def extraction_complete(
        self, data_type: DataType, message: ExtractionComplete, *, dead_letters: int
    ) -> int:
        """Purge the records of ``data_type`` absent from ``message.version`` when the
        guards allow it (not after a delta: its deletions were explicit), and set the
        version held; returns how many records were removed (0 when skipped)."""
        version, dt = message.version, str(data_type)
        base = message.delta_base(data_type)
        if base is not None:
            await delta.after_delta(
                self._driver,
                self._database,
                data_type,
                version,
                base_version=base,
                dead_letters=dead_letters,
            )
            return 0
        facts = await purge.load_facts(
            self._driver, self._database, data_type, version, dead_letters
        )
        decision = decide(facts, veto_fraction=self._veto_fraction)
        if not decision.allowed or version is None:
            log.warning(
                "graph_purge_skipped",
                data_type=dt,
                version=version,
                reason=decision.reason,
                would_delete=decision.to_delete,
                seen=facts.seen,
                stored=facts.stored,
                dead_letters=dead_letters,
            )
            await delta.set_held(self._driver, self._database, data_type, None)
            return 0
        started = time.monotonic()
        count = await purge.run(
            self._driver, self._database, data_type, version, chunk=self._purge_chunk
        )
        log.info(
            "graph_purge_done",
            data_type=dt,
            version=version,
            removed=count.records,
            demoted=count.demoted,
            deleted=count.deleted,
            orphans=count.orphans,
            seconds=round(time.monotonic() - started, 3),
        )
        await delta.set_held(
            self._driver, self._database, data_type, held_after_full(version, purged=True)
        )
        return count.records

    async def held_version(self, data_type: DataType) -> str | None:
        return await delta.held(self._driver, self._database, data_type)

    async def delete(self, data_type: DataType, ids: Sequence[str], *, version: str) -> int:
        count = await delta.delete(self._driver, self._database, data_type, ids, version)
        return count.records


async def write_batch(
    tx: AsyncManagedTransaction,
    data_type: DataType,
    gate: list[rows.Row],
    records: Sequence[Record],
) -> tuple[int, int]:
    """The batch's statements; returns (records written, of which added).

    A record whose node was new or a placeholder owns no edge yet (placeholders own
    none: the purge removes a record's edges before it demotes the node), so only the
    changed records that were complete before have edges to remove and orphans to check.
    """
    result = await tx.run(cypher.GATE[data_type], rows=gate)
    gated = await result.single(strict=True)
    changed = {ident: (added, node, seen) for ident, added, node, seen in gated[0]}
    if not changed:
        return 0, 0
    nodes = {ident: (node, seen) for ident, (_, node, seen) in changed.items()}
    result = await tx.run(
        cypher.NODE_PROPS[data_type], rows=rows.props_rows(data_type, records, nodes)
    )
    await result.consume()
    targets: set[str] = set()
    stale = (ident for ident, (added, _, _) in changed.items() if not added)
    for statement in rows.removal_statements(data_type, stale):
        result = await tx.run(statement.query, rows=statement.rows)
        targets.update(await result.value("t"))
    owners = {ident: node for ident, (node, _) in nodes.items()}
    for statement in rows.link_statements(data_type, records, owners):
        result = await tx.run(statement.query, rows=statement.rows, owners=statement.owners)
        await result.consume()
    await purge.settle_targets(tx, targets)
    return len(changed), sum(1 for added, _, _ in changed.values() if added)
