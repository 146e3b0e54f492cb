"""Delta updates in Neo4j: the version the graph holds per type, and deletions.

One ``(:StoreVersion {data_type, version})`` node per type names the dump version the
graph fully holds (:mod:`common.delta` says when it is set or removed); a delta message
applies only over it. A delete message removes its records exactly as the monthly purge
removes those a new version lacks (:func:`graphinator.purge.purge_chunk`, the same
statements and parameters): a node something else still references becomes a
placeholder again, the others go with the edges they own, and former targets left
unreferenced are deleted; a node stored from the delta's version or a newer one is left.
The statements are constants; every value is a parameter.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from neo4j import AsyncDriver, AsyncManagedTransaction

from common.delta import DeltaFacts, held_after_delta
from common.records import DataType
from graphinator import cypher, purge
from graphinator.errors import execute_write

log = structlog.get_logger(__name__)

HELD_GET = "MATCH (s:StoreVersion {data_type: $data_type}) RETURN s.version AS v"
HELD_SET = "MERGE (s:StoreVersion {data_type: $data_type}) SET s.version = $version"
HELD_REMOVE = "MATCH (s:StoreVersion {data_type: $data_type}) DELETE s"


async def held(driver: AsyncDriver, database: str, data_type: DataType) -> str | None:
    async def read(tx: AsyncManagedTransaction) -> str | None:
        result = await tx.run(HELD_GET, data_type=data_type.value)
        row = await result.single()
        return None if row is None else str(row["v"])

    return await execute_write(driver, database, data_type, read)


async def set_held(
    driver: AsyncDriver, database: str, data_type: DataType, version: str | None
) -> None:
    """Record that the graph holds ``version`` of the type (None: no version)."""

    async def write(tx: AsyncManagedTransaction) -> None:
        if version is None:
            result = await tx.run(HELD_REMOVE, data_type=data_type.value)
        else:
            result = await tx.run(HELD_SET, data_type=data_type.value, version=version)
        await result.consume()

    await execute_write(driver, database, data_type, write)
    log.info("graph_held_version", data_type=data_type.value, version=version)


async def after_delta(
    driver: AsyncDriver,
    database: str,
    data_type: DataType,
    version: str | None,
    *,
    base_version: str,
    dead_letters: int,
) -> None:
    """A delta's ``extraction_complete``: hold the new version if it applied whole."""

    async def read(tx: AsyncManagedTransaction) -> tuple[str | None, str | None]:
        state = await (await tx.run(cypher.FILE_COMPLETE_GET, data_type=data_type.value)).single()
        current = await (await tx.run(HELD_GET, data_type=data_type.value)).single()
        return (
            None if state is None else state["v"],
            None if current is None else current["v"],
        )

    completed, current = await execute_write(driver, database, data_type, read)
    facts = DeltaFacts(version, base_version, current, completed, dead_letters)
    new = held_after_delta(facts)
    if new is None:
        log.warning("graph_delta_not_held", data_type=data_type.value, facts=repr(facts))
    await set_held(driver, database, data_type, new)


async def delete(
    driver: AsyncDriver, database: str, data_type: DataType, ids: Sequence[str], version: str
) -> purge.PurgeCount:
    """Remove the records ``ids`` in one transaction, as the purge does (see module doc)."""
    rows = [{"id": int(i), "version": version} for i in ids]
    if not rows:
        return purge.PurgeCount()

    async def work(tx: AsyncManagedTransaction) -> purge.PurgeCount:
        return await purge.purge_chunk(tx, data_type, rows)

    return await execute_write(driver, database, data_type, work)
