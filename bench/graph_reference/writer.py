"""REFERENCE ONLY: graphinator's batch write as it was on main at 275787c, over the frozen
statements of this package. Used by :mod:`bench.graph_cost`; never edit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from neo4j import AsyncDriver, AsyncManagedTransaction

from bench.graph_reference import cypher, rows
from common.records import DataType, Record
from graphinator.errors import execute_write


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
