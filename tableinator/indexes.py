"""Bulk-load mode: a table's secondary indexes dropped while it loads, rebuilt at its end.

``bulk_load``: ``"auto"`` drops a table's secondary indexes for the load when it is empty
at start, ``"true"`` always does, ``"false"`` never does. The flag lives in the database
(``tableinator_state``), so a restart mid-load still ends with every index in place.
``rebuild_workers``: indexes built at once when the mode ends, each on a pooled connection
of its own. Statements: :mod:`tableinator.sql`; docs/postgres.md explains them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import structlog
from psycopg import AsyncCursor

from common.records import DataType
from tableinator import sql
from tableinator.pool import Transaction

log = structlog.get_logger(__name__)


class BulkLoad:
    """Enters and leaves bulk-load mode per type, through ``transaction``; ``max_connections``
    bounds the builds run at once (the caller holds one connection of the pool)."""

    def __init__(
        self, transaction: Transaction, *, mode: str, rebuild_workers: int, max_connections: int
    ) -> None:
        if mode not in sql.BULK_LOAD_MODES:
            raise ValueError(f"bulk_load must be one of auto, true, false; got {mode!r}")
        if rebuild_workers < 1:
            raise ValueError(f"rebuild_workers must be at least 1; got {rebuild_workers}")
        self._transaction = transaction
        self._mode = mode
        self._workers = max(1, min(rebuild_workers, max_connections - 1))

    async def prepare(self, data_type: DataType) -> None:
        """At start: resume a load, start one where the mode says, else create the indexes."""
        spec = sql.SPECS[data_type]
        async with self._transaction() as cur:
            await cur.execute(sql.ADVISORY_LOCK, (spec.lock_key,))
            if await flag(cur, data_type):
                await _drop_indexes(cur, spec)
                log.info("bulk load resumed", data_type=data_type.value)
                return
            if await self._wanted(cur, spec):
                await _drop_indexes(cur, spec)
                await cur.execute(sql.SET_FLAG, (data_type.value, True))
                log.info("bulk load started", data_type=data_type.value, mode=self._mode)
                return
            for index in spec.indexes:
                await cur.execute(sql.create_index(spec, index))
        log.info("indexes in place", data_type=data_type.value, mode=self._mode)

    async def dropped(self, data_type: DataType) -> bool:
        """Whether ``data_type`` is in bulk-load mode (its secondary indexes dropped)."""
        async with self._transaction() as cur:
            return await flag(cur, data_type)

    async def ensure(self, data_type: DataType) -> None:
        """Create any missing secondary index of ``data_type`` and leave bulk-load mode.

        Idempotent. Missing indexes are built ``rebuild_workers`` at a time, each in its own
        transaction, while this transaction holds the type's advisory lock; the ANALYZE and
        the cleared flag commit only after every build has, so a crash part-way leaves the
        flag set and the next call builds what is still missing.
        """
        spec = sql.SPECS[data_type]
        started = time.perf_counter()
        async with self._transaction() as cur:
            await cur.execute(sql.ADVISORY_LOCK, (spec.lock_key,))
            was_dropped = await flag(cur, data_type)
            await cur.execute(sql.MISSING_INDEXES, ([index.name for index in spec.indexes],))
            missing = {row[0] for row in await cur.fetchall()}
            await self._build(spec, [i for i in spec.indexes if i.name in missing])
            if was_dropped:
                await cur.execute(sql.analyze(spec))
            await cur.execute(sql.SET_FLAG, (data_type.value, False))
        duration_ms = round((time.perf_counter() - started) * 1000)
        event = "indexes rebuilt" if was_dropped else "indexes ensured"
        log.info(event, data_type=data_type.value, built=len(missing), duration_ms=duration_ms)

    async def _build(self, spec: sql.TableSpec, indexes: Sequence[sql.Index]) -> None:
        """Build ``indexes``, the slowest (GIN) first. Every build runs to its end even when
        another fails (each is useful and idempotent); the first failure is raised after."""
        if not indexes:
            return
        queue = sorted(indexes, key=lambda index: index.method != "gin")

        async def builder() -> None:
            while queue:
                index = queue.pop(0)
                async with self._transaction() as cur:
                    await cur.execute(sql.REBUILD_MEMORY)
                    await cur.execute(sql.create_index(spec, index))

        workers = min(self._workers, len(queue))
        results = await asyncio.gather(*(builder() for _ in range(workers)), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _wanted(self, cur: AsyncCursor[Any], spec: sql.TableSpec) -> bool:
        if self._mode != "auto":
            return self._mode == "true"
        await cur.execute(sql.is_empty(spec))
        row = await cur.fetchone()
        return bool(row and row[0])


async def flag(cur: AsyncCursor[Any], data_type: DataType) -> bool:
    """Whether ``data_type``'s indexes are dropped for a load (read in ``cur``'s transaction)."""
    await cur.execute(sql.READ_FLAG, (data_type.value,))
    row = await cur.fetchone()
    return bool(row and row[0])


async def _drop_indexes(cur: AsyncCursor[Any], spec: sql.TableSpec) -> None:
    for index in spec.indexes:
        await cur.execute(sql.drop_index(index))
