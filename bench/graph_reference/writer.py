"""REFERENCE ONLY: graphinator's batch write as it was on main at 275787c, over the frozen
statements of this package. Used by :mod:`bench.graph_cost`; never edit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from neo4j import AsyncDriver, AsyncManagedTransaction

from bench.graph_reference import cypher, rows
from common.records import DataType, Record
from common.sink import WriteResult
from graphinator.errors import execute_write
from graphinator.writer import Neo4jWriter


async def write_batch(tx: Any, data_type: DataType, records: Sequence[Record]) -> int:
    """The reference batch: merge the nodes, then replace every changed record's edges."""
    node_rows = rows.node_rows(data_type, records)
    result = await tx.run(cypher.MERGE_NODES[data_type], rows=node_rows)
    changed_ids = {row["id"]: row["added"] async for row in result}
    changed = [r for r in records if rows.node_id(r.id) in changed_ids]
    targets: set[str] = set()
    for statement in rows.link_statements(data_type, changed):
        result = await tx.run(statement.query, rows=statement.rows)
        if statement.targets:
            targets.update(await result.value("t"))
        else:
            await result.consume()
    if targets:
        result = await tx.run(cypher.ORPHANS, rows=[{"id": t} for t in sorted(targets)])
        await result.consume()
    return len(changed)


class ReferenceWriter:
    """Writes one batch per managed transaction, as graphinator's writer did."""

    def __init__(self, driver: AsyncDriver) -> None:
        self._driver = driver

    async def write(self, data_type: DataType, records: Sequence[Record]) -> int:
        async def work(tx: AsyncManagedTransaction) -> int:
            return await write_batch(tx, data_type, records)

        return await execute_write(self._driver, "neo4j", data_type, work)


class ReferenceNeo4jWriter(Neo4jWriter):
    """graphinator's writer with the reference batch write, for the service the drain
    bench runs (``python -m bench.graph_reference.service``); setup, file_complete and the
    purge are today's."""

    def __init__(self, *, driver: AsyncDriver, database: str = "neo4j", **options: Any) -> None:
        super().__init__(driver=driver, database=database, **options)
        self._reference = (driver, database)

    async def write(self, data_type: DataType, records: Sequence[Record]) -> WriteResult:
        if not records:
            return WriteResult(written=0, unchanged=0)

        async def work(tx: AsyncManagedTransaction) -> int:
            return await write_batch(tx, data_type, records)

        driver, database = self._reference
        written = await execute_write(driver, database, data_type, work)
        return WriteResult(written=written, unchanged=len(records) - written)
