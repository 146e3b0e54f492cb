"""Delta updates in PostgreSQL: the version each type's table holds, and deletions.

``store_versions`` holds, per data type, the dump version the table fully holds
(:mod:`common.delta` says when it is set or removed); a delta message applies only over
it. A delete message removes its ids from the type's table and seen table in one
transaction, as the purge does for the ids a full publish lacked. Names come only from
the fixed specs of :mod:`tableinator.sql`; every value is a parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import structlog
from psycopg import sql

from common.delta import DeltaFacts, held_after_delta
from common.records import DataType
from tableinator import updates
from tableinator.pool import Transaction
from tableinator.sql import SPECS, TableSpec

log = structlog.get_logger(__name__)

VERSIONS_TABLE: Final = sql.Identifier("store_versions")
CREATE_VERSIONS: Final = sql.SQL(
    "CREATE TABLE IF NOT EXISTS {} (data_type text PRIMARY KEY, version text NOT NULL,"
    " updated_at timestamptz NOT NULL DEFAULT now())"
).format(VERSIONS_TABLE)
# Parameters: data type[, version].
READ_HELD: Final = sql.SQL("SELECT version FROM {} WHERE data_type = %s").format(VERSIONS_TABLE)
SET_HELD: Final = sql.SQL(
    "INSERT INTO {} (data_type, version) VALUES (%s, %s) ON CONFLICT (data_type)"
    " DO UPDATE SET version = EXCLUDED.version, updated_at = now()"
).format(VERSIONS_TABLE)
REMOVE_HELD: Final = sql.SQL("DELETE FROM {} WHERE data_type = %s").format(VERSIONS_TABLE)


def delete_ids(spec: TableSpec) -> sql.Composed:
    """Delete the rows ``ids`` and their seen stamps, unless stamped ``version`` or newer.

    Parameters by name: ``ids`` (a text array), ``version``. As :func:`updates.purge_chunk`:
    a row stored from the delta's version (or a newer one) is never deleted by it. Returns
    one row: the rows deleted.
    """
    return sql.SQL(
        "WITH doomed AS (SELECT d.data_id FROM unnest(%(ids)s::text[]) AS d(data_id)"
        " WHERE NOT EXISTS (SELECT 1 FROM {seen} AS v WHERE v.data_id = d.data_id"
        " AND v.version >= %(version)s)),"
        " gone AS (DELETE FROM {t} AS t USING doomed AS d WHERE t.data_id = d.data_id"
        " RETURNING t.data_id),"
        " unseen AS (DELETE FROM {seen} AS v USING doomed AS d WHERE v.data_id = d.data_id)"
        " SELECT count(*) FROM gone"
    ).format(t=spec.table, seen=spec.seen)


class DeltaStore:
    """The held versions and deletions, through ``transaction`` (a cursor in one transaction)."""

    def __init__(self, transaction: Transaction) -> None:
        self._transaction = transaction

    async def held(self, data_type: DataType) -> str | None:
        async with self._transaction() as cur:
            await cur.execute(READ_HELD, (data_type.value,))
            row = await cur.fetchone()
        return str(row[0]) if row else None

    async def set_held(self, data_type: DataType, version: str | None) -> None:
        """Record that the table holds ``version`` (None: no version)."""
        async with self._transaction() as cur:
            if version is None:
                await cur.execute(REMOVE_HELD, (data_type.value,))
            else:
                await cur.execute(SET_HELD, (data_type.value, version))
        log.info("held version", data_type=data_type.value, version=version)

    async def after_delta(
        self, data_type: DataType, version: str | None, base_version: str, dead_letters: int
    ) -> None:
        """A delta's ``extraction_complete``: hold the new version if it applied whole."""
        async with self._transaction() as cur:
            await cur.execute(updates.READ_FILE_COMPLETE, (data_type.value,))
            row = await cur.fetchone()
        facts = DeltaFacts(
            version=version,
            base_version=base_version,
            held=await self.held(data_type),
            file_complete_version=row[0] if row else None,
            dead_letters=dead_letters,
        )
        held = held_after_delta(facts)
        if held is None:
            log.warning("delta not held", data_type=data_type.value, facts=repr(facts))
        await self.set_held(data_type, held)

    async def delete(self, data_type: DataType, ids: Sequence[str], version: str) -> int:
        if not ids:
            return 0
        async with self._transaction() as cur:
            await cur.execute(delete_ids(SPECS[data_type]), {"ids": list(ids), "version": version})
            row = await cur.fetchone()
        return int(row[0]) if row else 0
