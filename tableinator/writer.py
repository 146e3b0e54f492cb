"""tableinator's database writer: the :class:`common.sink.Writer` for PostgreSQL.

Each batch is one transaction on a pooled connection: binary COPY into a temp table
(``ON COMMIT DROP``), then one ``INSERT ... SELECT ... ON CONFLICT`` merge that leaves rows
with an unchanged hash (or stored from a newer dump version) untouched, then the stamp of
every record's dump version in the narrow ``<type>_seen`` table. The rest is delegated:
the schema (:mod:`tableinator.schema`), bulk-load mode (:mod:`tableinator.indexes`), the
purge after a full publish (:mod:`tableinator.purger`), the version held and a delta's
deletions (:mod:`tableinator.delta`). Statements and rows come from :mod:`tableinator.sql`;
docs/postgres.md explains them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog
from psycopg_pool import AsyncConnectionPool

from common.delta import held_after_full
from common.messages import ExtractionComplete, FileComplete
from common.purge import DEFAULT_VETO_FRACTION
from common.records import DataType, Record
from common.sink import WriteResult
from tableinator import rows as copy_rows
from tableinator import sql, updates
from tableinator.delta import DeltaStore
from tableinator.indexes import BulkLoad, flag
from tableinator.pool import transactions
from tableinator.purger import Purger
from tableinator.schema import create_schema

log = structlog.get_logger(__name__)


class PostgresWriter:
    """Writes normalised records into one table per data type, and runs the completions.

    ``pool`` must hand out connections in the default (non-autocommit) mode.
    ``bulk_load`` and ``rebuild_workers``: see :mod:`tableinator.indexes`.
    ``purge_veto_fraction``: the monthly purge is refused when it would delete more than
    this share of a type's rows; ``purge_chunk_size``: ids examined per purge transaction.
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
        self._transaction = transactions(pool)
        self._bulk = BulkLoad(
            self._transaction,
            mode=bulk_load,
            rebuild_workers=rebuild_workers,
            max_connections=pool.max_size,
        )
        self._lz4 = False
        self._purger = Purger(
            self._transaction, veto_fraction=purge_veto_fraction, chunk_size=purge_chunk_size
        )
        self._delta = DeltaStore(self._transaction)

    async def setup(self) -> None:
        """Create the schema (safe to re-run) and enter bulk-load mode where it applies."""
        async with self._transaction() as cur:
            self._lz4 = await create_schema(cur)
        for data_type in DataType:
            await self._bulk.prepare(data_type)

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
            await cur.execute(sql.SHARED_LOCK, (spec.purge_lock_key,))
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
            dropped = await flag(cur, data_type)
        if not dropped:
            log.info("indexes already in place", data_type=data_type.value, file=message.file)
            return
        await self._bulk.ensure(data_type)

    async def extraction_complete(
        self, data_type: DataType, message: ExtractionComplete, *, dead_letters: int
    ) -> int:
        """Make sure every index exists, then purge the rows ``message.version`` lacked
        (not after a delta: its deletions were explicit) and set the version held.

        The purge is skipped (and logged, returning 0) when :func:`common.purge.decide`
        refuses it; it is idempotent, so a redelivered message after a crash finishes it.
        """
        await self._bulk.ensure(data_type)
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
        """Create any missing secondary index and leave bulk-load mode (idempotent)."""
        await self._bulk.ensure(data_type)

    async def indexes_dropped(self, data_type: DataType) -> bool:
        """Whether ``data_type`` is in bulk-load mode (its secondary indexes dropped)."""
        return await self._bulk.dropped(data_type)
