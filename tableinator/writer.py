"""tableinator's database writer: the :class:`common.sink.Writer` for PostgreSQL.

Each batch is one transaction on a pooled connection: binary COPY into a temp table
(``ON COMMIT DROP``), then one ``INSERT ... SELECT ... ON CONFLICT`` merge that leaves rows
with an unchanged hash (or stored from a newer dump version) untouched, then the stamp of
every record's dump version in the narrow ``<type>_seen`` table. ``extraction_complete``
purges what the version did not carry (:mod:`tableinator.purger`). Bulk-load mode drops a
table's secondary indexes while it is loaded and rebuilds them on ``file_complete``; the
flag lives in the database (``tableinator_state``) so a restart mid-load still ends with
every index in place. The version the table holds, and a delta's deletions:
:mod:`tableinator.delta`.
Statements and rows come from :mod:`tableinator.sql`; docs/postgres.md explains them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import structlog
from psycopg import AsyncCursor
from psycopg_pool import AsyncConnectionPool

from common.delta import held_after_full
from common.messages import ExtractionComplete, FileComplete
from common.purge import DEFAULT_VETO_FRACTION
from common.records import DataType, Record
from common.sink import WriteResult
from tableinator import rows as copy_rows
from tableinator import sql, updates
from tableinator.delta import CREATE_VERSIONS, DeltaStore
from tableinator.purger import Purger

log = structlog.get_logger(__name__)


class PostgresWriter:
    """Writes normalised records into one table per data type (see :mod:`tableinator.sql`).

    ``pool`` must hand out connections in the default (non-autocommit) mode; every unit of
    work runs inside an explicit ``conn.transaction()``. ``bulk_load``: ``"auto"`` drops a
    table's secondary indexes for the load when it is empty at :meth:`setup`, ``"true"``
    always does, ``"false"`` never does. ``purge_veto_fraction``: the monthly purge is
    refused when it would delete more than this share of a type's rows;
    ``purge_chunk_size``: ids examined per purge transaction. ``rebuild_workers``: indexes
    built at once when bulk-load mode ends, each on a pooled connection of its own.
    """

    def __init__(
        self,
        *,
        pool: AsyncConnectionPool[Any],
        bulk_load: str = "auto",
        purge_veto_fraction: float = DEFAULT_VETO_FRACTION,
        purge_chunk_size: int = updates.DEFAULT_PURGE_CHUNK,
        rebuild_workers: int = sql.REBUILD_WORKERS,
    ) -> None:
        if bulk_load not in sql.BULK_LOAD_MODES:
            raise ValueError(f"bulk_load must be one of auto, true, false; got {bulk_load!r}")
        if rebuild_workers < 1:
            raise ValueError(f"rebuild_workers must be at least 1; got {rebuild_workers}")
        self._pool = pool
        self._bulk_load = bulk_load
        self._rebuild_workers = rebuild_workers
        self._lz4 = False
        self._purger = Purger(
            self._transaction, veto_fraction=purge_veto_fraction, chunk_size=purge_chunk_size
        )
        self._delta = DeltaStore(self._transaction)

    async def setup(self) -> None:
        """Create the schema (safe to re-run) and enter bulk-load mode where it applies."""
        async with self._transaction() as cur:
            await cur.execute(sql.ADVISORY_LOCK, (sql.SCHEMA_LOCK_KEY,))
            statements = [*sql.schema_statements(), *updates.schema_statements(), CREATE_VERSIONS]
            for statement in statements:
                await cur.execute(statement)
            await self._add_missing_columns(cur)
            self._lz4 = await self._lz4_available(cur)
            if self._lz4:
                await self._compress_with_lz4(cur)
        for data_type in DataType:
            await self._prepare_indexes(data_type)

    async def write(self, data_type: DataType, records: Sequence[Record]) -> WriteResult:
        """Upsert ``records`` in one transaction and stamp their version as seen.

        Rows whose hash matches, or whose content came from a newer dump version, are not
        rewritten. ``added`` counts the written rows that are new ids.
        """
        spec = sql.SPECS[data_type]
        rows = copy_rows.build_rows(spec, records)  # before taking a connection: may reject
        if not rows:
            return WriteResult(written=0, unchanged=0)
        async with self._transaction() as cur:
            await cur.execute(sql.create_stage(spec, lz4=self._lz4))
            async with cur.copy(sql.copy_stage(spec)) as copy:
                copy.set_types(spec.copy_types)
                for row in rows:
                    await copy.write_row(row)
            await cur.execute(sql.merge(spec))
            inserted = [bool(row[0]) for row in await cur.fetchall()]
            await cur.execute(updates.mark_seen(spec))
        written = len(inserted)
        return WriteResult(written=written, unchanged=len(records) - written, added=sum(inserted))

    async def file_complete(self, message: FileComplete) -> None:
        """Persist that the version's file arrived whole; rebuild indexes a bulk load dropped."""
        data_type = message.data_type
        await self._purger.file_complete(data_type, message.version)
        async with self._transaction() as cur:
            dropped = await self._flag(cur, data_type)
        if not dropped:
            log.info("indexes already in place", data_type=data_type.value, file=message.file)
            return
        await self.ensure_indexes(data_type)

    async def extraction_complete(
        self, data_type: DataType, message: ExtractionComplete, *, dead_letters: int
    ) -> int:
        """Make sure every index exists, then purge the rows ``message.version`` lacked
        (not after a delta: its deletions were explicit) and set the version held.

        The purge is skipped (and logged, returning 0) when :func:`common.purge.decide`
        refuses it; it is idempotent, so a redelivered message after a crash finishes it.
        """
        await self.ensure_indexes(data_type)
        base = message.delta_base(data_type)
        if base is not None:
            await self._delta.after_delta(data_type, message.version, base, dead_letters)
            return 0
        deleted = await self._purger.purge(data_type, message.version, dead_letters=dead_letters)
        held = held_after_full(message.version, purged=deleted is not None)
        await self._delta.set_held(data_type, held)
        return deleted or 0

    async def held_version(self, data_type: DataType) -> str | None:
        return await self._delta.held(data_type)

    async def delete(self, data_type: DataType, ids: Sequence[str], *, version: str) -> int:
        return await self._delta.delete(data_type, ids, version)

    async def ensure_indexes(self, data_type: DataType) -> None:
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
            was_dropped = await self._flag(cur, data_type)
            await cur.execute(sql.MISSING_INDEXES, ([index.name for index in spec.indexes],))
            missing = {row[0] for row in await cur.fetchall()}
            await self._build_indexes(spec, [i for i in spec.indexes if i.name in missing])
            if was_dropped:
                await cur.execute(sql.analyze(spec))
            await cur.execute(sql.SET_FLAG, (data_type.value, False))
        duration_ms = round((time.perf_counter() - started) * 1000)
        event = "indexes rebuilt" if was_dropped else "indexes ensured"
        log.info(event, data_type=data_type.value, built=len(missing), duration_ms=duration_ms)

    async def _build_indexes(self, spec: sql.TableSpec, indexes: Sequence[sql.Index]) -> None:
        """Build ``indexes`` on up to ``rebuild_workers`` connections, the slowest first.

        Every build runs to its end even when another fails (each is useful work and
        idempotent); the first failure is raised afterwards.
        """
        if not indexes:
            return
        queue = sorted(indexes, key=lambda index: index.method != "gin")

        async def builder() -> None:
            while queue:
                index = queue.pop(0)
                async with self._transaction() as cur:
                    await cur.execute(sql.REBUILD_MEMORY)
                    await cur.execute(sql.create_index(spec, index))

        # The caller holds one of the pool's connections.
        workers = max(1, min(self._rebuild_workers, len(queue), self._pool.max_size - 1))
        results = await asyncio.gather(*(builder() for _ in range(workers)), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def indexes_dropped(self, data_type: DataType) -> bool:
        """Whether ``data_type`` is in bulk-load mode (its secondary indexes dropped)."""
        async with self._transaction() as cur:
            return await self._flag(cur, data_type)

    async def _prepare_indexes(self, data_type: DataType) -> None:
        spec = sql.SPECS[data_type]
        async with self._transaction() as cur:
            await cur.execute(sql.ADVISORY_LOCK, (spec.lock_key,))
            if await self._flag(cur, data_type):
                await self._drop_indexes(cur, spec)
                log.info("bulk load resumed", data_type=data_type.value)
                return
            if await self._bulk_wanted(cur, spec):
                await self._drop_indexes(cur, spec)
                await cur.execute(sql.SET_FLAG, (data_type.value, True))
                log.info("bulk load started", data_type=data_type.value, mode=self._bulk_load)
                return
            for index in spec.indexes:
                await cur.execute(sql.create_index(spec, index))
        log.info("indexes in place", data_type=data_type.value, mode=self._bulk_load)

    async def _bulk_wanted(self, cur: AsyncCursor[Any], spec: sql.TableSpec) -> bool:
        if self._bulk_load != "auto":
            return self._bulk_load == "true"
        await cur.execute(sql.is_empty(spec))
        row = await cur.fetchone()
        return bool(row and row[0])

    @staticmethod
    async def _add_missing_columns(cur: AsyncCursor[Any]) -> None:
        """Bring tables created by an older release up to date (no lock unless needed)."""
        for table, column in updates.ADDED_COLUMNS:
            await cur.execute(updates.COLUMN_MISSING, (table, column))
            row = await cur.fetchone()
            if row and row[0]:
                await cur.execute(updates.add_column(table, column))
                log.info("column added", table=table, column=column)

    @staticmethod
    async def _lz4_available(cur: AsyncCursor[Any]) -> bool:
        """Whether the server was built with lz4 (probed in a savepoint)."""
        try:
            async with cur.connection.transaction():
                await cur.execute(sql.LZ4_PROBE)
        except psycopg.errors.InvalidParameterValue:
            log.info("lz4 unavailable; documents compressed with pglz")
            return False
        return True

    @staticmethod
    async def _compress_with_lz4(cur: AsyncCursor[Any]) -> None:
        """New documents are compressed with lz4 (a third of pglz's CPU); no lock if set."""
        for spec in sql.SPECS.values():
            await cur.execute(sql.DATA_COMPRESSION, (spec.data_type.value,))
            row = await cur.fetchone()
            if row is not None and row[0] != "l":
                await cur.execute(sql.use_lz4(spec))

    @staticmethod
    async def _drop_indexes(cur: AsyncCursor[Any], spec: sql.TableSpec) -> None:
        for index in spec.indexes:
            await cur.execute(sql.drop_index(index))

    @staticmethod
    async def _flag(cur: AsyncCursor[Any], data_type: DataType) -> bool:
        await cur.execute(sql.READ_FLAG, (data_type.value,))
        row = await cur.fetchone()
        return bool(row and row[0])

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncCursor[Any]]:
        """A cursor inside one transaction; driver errors mapped for the runtime."""
        try:
            async with (
                self._pool.connection() as conn,
                conn.transaction(),
                conn.cursor() as cur,
            ):
                yield cur
        except psycopg.Error as e:
            mapped = sql.classify(e)
            if mapped is None:
                raise
            raise mapped from e
