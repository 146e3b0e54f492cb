"""The purge of one data type after a monthly update (docs/graph-model.md, "Updates").

A complete node carries ``seen``, the dump version that last wrote or confirmed it. When
a type's ``extraction_complete`` names version V (every batch flushed), the complete
nodes of that type not seen in V (``seen`` absent or older) are removed, provided the
guards of :func:`common.purge.decide` allow it:

1. the candidate ids are read once (one label scan), then handled in chunks, each chunk
   one managed write transaction: *claim* (lock, then re-check: a write that confirmed the
   node since the candidates were read, or in flight on it, wins), remove the edges the
   records own (collecting the nodes they pointed at), *demote* the nodes something else
   still references to placeholders (``id``, ``placeholder: true``), *delete* the others,
   delete the former targets left as orphan placeholders / tags, and name the placeholders
   among the former targets and the demoted nodes from the references left
   (:mod:`graphinator.names`);
2. every chunk commits on its own and re-checks its candidates, so a crash mid-purge
   followed by the redelivered ``extraction_complete`` finishes the work exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from neo4j import AsyncDriver, AsyncManagedTransaction

from common.purge import LoadFacts
from common.records import DataType
from graphinator import cypher
from graphinator.errors import Work, execute_write

DEFAULT_CHUNK = 1000


@dataclass(frozen=True, slots=True)
class PurgeCount:
    demoted: int = 0  # records removed, their node kept as a placeholder
    deleted: int = 0  # records removed with their node
    orphans: int = 0  # placeholders / tags nothing references any more

    @property
    def records(self) -> int:
        return self.demoted + self.deleted

    def __add__(self, other: PurgeCount) -> PurgeCount:
        return PurgeCount(
            self.demoted + other.demoted,
            self.deleted + other.deleted,
            self.orphans + other.orphans,
        )


async def load_facts(
    driver: AsyncDriver,
    database: str,
    data_type: DataType,
    version: str | None,
    dead_letters: int,
) -> LoadFacts:
    """What :func:`common.purge.decide` needs, read from the graph."""
    if version is None:
        return LoadFacts(None, False, dead_letters, seen=0, stored=0)

    async def read(tx: AsyncManagedTransaction) -> tuple[Any, Any]:
        state = await tx.run(cypher.FILE_COMPLETE_GET, data_type=data_type.value)
        done = await state.single()
        counts = await tx.run(cypher.PURGE[data_type].facts, version=version)
        return done, await counts.single(strict=True)

    done, counts = await execute_write(driver, database, data_type, read)
    return LoadFacts(
        version=version,
        file_complete_seen=done is not None and done["v"] == version,
        dead_letters=dead_letters,
        seen=counts["seen"],
        stored=counts["stored"],
    )


async def run(
    driver: AsyncDriver,
    database: str,
    data_type: DataType,
    version: str,
    *,
    chunk: int = DEFAULT_CHUNK,
) -> PurgeCount:
    """Remove the records of ``data_type`` not seen in ``version`` (the guards passed)."""

    async def candidates(tx: AsyncManagedTransaction) -> list[int]:
        result = await tx.run(cypher.PURGE[data_type].candidates, version=version)
        return [int(i) for i in await result.value("id")]

    ids = await execute_write(driver, database, data_type, candidates)
    total = PurgeCount()
    for start in range(0, len(ids), chunk):
        rows = [{"id": i, "version": version} for i in ids[start : start + chunk]]
        total += await execute_write(driver, database, data_type, _chunk_work(data_type, rows))
    return total


def _chunk_work(data_type: DataType, rows: list[dict[str, Any]]) -> Work[PurgeCount]:
    async def work(tx: AsyncManagedTransaction) -> PurgeCount:
        return await purge_chunk(tx, data_type, rows)

    return work


async def purge_chunk(
    tx: AsyncManagedTransaction, data_type: DataType, rows: list[dict[str, Any]]
) -> PurgeCount:
    """One chunk, in one transaction (see module doc)."""
    statements = cypher.PURGE[data_type]
    # Locked first, read after: a write of another replica in flight on a candidate is
    # committed before the claim reads its `seen`, so a record it confirmed stays.
    await (await tx.run(statements.lock, rows=rows)).consume()
    result = await tx.run(statements.claim, rows=rows)
    claimed = [{"id": i} for i in await result.value("id")]
    if not claimed:
        return PurgeCount()
    targets: set[str] = set()
    for query in cypher.PLANS[data_type].owned:
        result = await tx.run(query, rows=claimed)
        targets.update(await result.value("t"))
    result = await tx.run(statements.demote, rows=claimed)
    demoted = await result.value("node")
    targets.update(demoted)  # named from their references by the rename of the targets
    deleted = await _count(tx, statements.delete, claimed, "deleted")
    orphans = await settle_targets(tx, targets)
    return PurgeCount(demoted=len(demoted), deleted=deleted, orphans=orphans)


async def settle_targets(tx: AsyncManagedTransaction, targets: set[str]) -> int:
    """Delete the former edge targets ``targets`` left as unreferenced placeholders/tags,
    and name those left as placeholders from the references left; returns the deleted."""
    if not targets:
        return 0
    rows = [{"id": t} for t in sorted(targets)]  # one lock order: fewer deadlocks
    result = await tx.run(cypher.ORPHANS_LOCK, rows=rows)
    await result.consume()
    deleted = await _count(tx, cypher.ORPHANS, rows, "deleted")
    result = await tx.run(cypher.RENAME, rows=rows)
    await result.consume()
    return deleted


async def _count(
    tx: AsyncManagedTransaction, query: str, rows: list[dict[str, Any]], key: str
) -> int:
    result = await tx.run(query, rows=rows)
    return sum(int(v) for v in await result.value(key))
