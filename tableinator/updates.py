"""Statements of the monthly update: seen stamps, file_complete state, the purge. Pure.

Each data type has a narrow side table ``<type>_seen(data_id, version)`` holding the newest
dump version that carried each record. Every batch stamps all its records there (in the
transaction of the merge), so an unchanged record costs a small row in the side table and
leaves its document alone. After a version's ``extraction_complete`` the rows not stamped
with that version are deleted, in chunks, from both tables. Names come only from the fixed
specs in :mod:`tableinator.sql`; every value is a parameter. Rationale: docs/postgres.md.
"""

from __future__ import annotations

from typing import Final

from psycopg import sql

from tableinator.sql import SPECS, STATE_TABLE, TableSpec

# Ids examined per purge transaction.
DEFAULT_PURGE_CHUNK: Final = 50_000

# Columns added after the first release, for databases created before them: (table, column).
ADDED_COLUMNS: Final[tuple[tuple[str, str], ...]] = (
    ("tableinator_state", "file_complete_version"),
    *((data_type.value, "version") for data_type in SPECS),
)
# Parameters: table name, column name.
COLUMN_MISSING: Final = sql.SQL(
    "SELECT NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(%s)"
    " AND attname = %s AND NOT attisdropped)"
)


def add_column(table: str, column: str) -> sql.Composed:
    """Add one of :data:`ADDED_COLUMNS` (nullable text: a catalogue-only change)."""
    if (table, column) not in ADDED_COLUMNS:
        raise ValueError(f"{table}.{column} is not a known added column")
    return sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} text").format(
        sql.Identifier(table), sql.Identifier(column)
    )


def create_seen_table(spec: TableSpec) -> sql.Composed:
    """Per id, the newest dump version that carried the record (narrow: cheap to rewrite)."""
    return sql.SQL(
        "CREATE TABLE IF NOT EXISTS {} (data_id text PRIMARY KEY, version text NOT NULL)"
    ).format(spec.seen)


def schema_statements() -> list[sql.Composed]:
    """The seen tables; safe to re-run (after :func:`tableinator.sql.schema_statements`)."""
    return [create_seen_table(spec) for spec in SPECS.values()]


def mark_seen(spec: TableSpec) -> sql.Composed:
    """Stamp every staged id with its version; only ids whose stamp is older are touched.

    Runs after the merge in the same transaction. The filter (one primary-key probe per
    staged row, as in the merge) leaves already-stamped rows unlocked and unwritten; the
    ``ON CONFLICT ... WHERE`` keeps a stamp from ever going back to an older version.
    Records without a version are never stamped.
    """
    return sql.SQL(
        "INSERT INTO {seen} AS v (data_id, version) SELECT s.data_id, s.version"
        " FROM {stage} AS s WHERE s.version"
        " > coalesce((SELECT o.version FROM {seen} AS o WHERE o.data_id = s.data_id), '')"
        " ORDER BY s.data_id ON CONFLICT (data_id) DO UPDATE SET version = EXCLUDED.version"
        " WHERE v.version < EXCLUDED.version"
    ).format(seen=spec.seen, stage=spec.stage)


# --- file_complete state (parameters: data type[, version]) ---------------------------

READ_FILE_COMPLETE: Final = sql.SQL(
    "SELECT file_complete_version FROM {} WHERE data_type = %s"
).format(STATE_TABLE)
SET_FILE_COMPLETE: Final = sql.SQL(
    "INSERT INTO {} (data_type, file_complete_version) VALUES (%s, %s)"
    " ON CONFLICT (data_type) DO UPDATE"
    " SET file_complete_version = EXCLUDED.file_complete_version, updated_at = now()"
).format(STATE_TABLE)


# --- purge ----------------------------------------------------------------------------


def count_stored(spec: TableSpec) -> sql.Composed:
    return sql.SQL("SELECT count(*) FROM {}").format(spec.table)


def count_seen(spec: TableSpec) -> sql.Composed:
    """Parameter: the version."""
    return sql.SQL("SELECT count(*) FROM {} WHERE version = %s").format(spec.seen)


def purge_chunk(spec: TableSpec) -> sql.Composed:
    """Examine the next ``limit`` ids after ``after`` and delete those not stamped ``version``.

    Parameters by name: ``version``, ``after``, ``limit``. The span is read in primary-key
    order (an index range scan whatever the statistics say), so the whole purge reads each
    row once; each id of the span costs one primary-key probe of the seen table. A row goes
    when it has no stamp or an older one; a newer stamp is never purged by an older
    version's completion. Both tables lose the ids in one statement, run holding the type's
    purge lock (``TableSpec.purge_lock_key``, which every write holds shared), so the
    stamps of writes in flight are committed and seen. Returns one row: (rows deleted, last
    id examined, or NULL when the span was empty: the purge is done).
    """
    return sql.SQL(
        "WITH span AS (SELECT data_id FROM {t} WHERE data_id > %(after)s"
        " ORDER BY data_id LIMIT %(limit)s),"
        " doomed AS (SELECT s.data_id FROM span AS s WHERE NOT EXISTS (SELECT 1 FROM {seen}"
        " AS v WHERE v.data_id = s.data_id AND v.version >= %(version)s)),"
        " gone AS (DELETE FROM {t} AS t USING doomed AS d WHERE t.data_id = d.data_id"
        " RETURNING t.data_id),"
        " unseen AS (DELETE FROM {seen} AS v USING doomed AS d WHERE v.data_id = d.data_id)"
        " SELECT (SELECT count(*) FROM gone), (SELECT max(data_id) FROM span)"
    ).format(t=spec.table, seen=spec.seen)
