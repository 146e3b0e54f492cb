"""Creating tableinator's schema, and bringing one made by an older release up to date.

Safe to re-run: every step checks first, and takes no lock it does not need. Statements:
:mod:`tableinator.sql` and :mod:`tableinator.updates`.
"""

from __future__ import annotations

from typing import Any

import psycopg
import structlog
from psycopg import AsyncCursor

from tableinator import sql, updates
from tableinator.delta import CREATE_VERSIONS

log = structlog.get_logger(__name__)


async def create_schema(cur: AsyncCursor[Any]) -> bool:
    """Create what is missing, in ``cur``'s transaction; whether documents use lz4."""
    await cur.execute(sql.ADVISORY_LOCK, (sql.SCHEMA_LOCK_KEY,))
    for statement in [*sql.schema_statements(), *updates.schema_statements(), CREATE_VERSIONS]:
        await cur.execute(statement)
    await _add_missing_columns(cur)
    lz4 = await _lz4_available(cur)
    if lz4:
        await _compress_with_lz4(cur)
    return lz4


async def _add_missing_columns(cur: AsyncCursor[Any]) -> None:
    for table, column in updates.ADDED_COLUMNS:
        await cur.execute(updates.COLUMN_MISSING, (table, column))
        row = await cur.fetchone()
        if row and row[0]:
            await cur.execute(updates.add_column(table, column))
            log.info("column added", table=table, column=column)


async def _lz4_available(cur: AsyncCursor[Any]) -> bool:
    """Whether the server was built with lz4 (probed in a savepoint)."""
    try:
        async with cur.connection.transaction():
            await cur.execute(sql.LZ4_PROBE)
    except psycopg.errors.InvalidParameterValue:
        log.info("lz4 unavailable; documents compressed with pglz")
        return False
    return True


async def _compress_with_lz4(cur: AsyncCursor[Any]) -> None:
    """New documents are compressed with lz4 (a third of pglz's CPU)."""
    for spec in sql.SPECS.values():
        await cur.execute(sql.DATA_COMPRESSION, (spec.data_type.value,))
        row = await cur.fetchone()
        if row is not None and row[0] != "l":
            await cur.execute(sql.use_lz4(spec))
