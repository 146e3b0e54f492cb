"""tableinator's PostgreSQL schema and statements. Pure: no I/O. The COPY rows are built
in :mod:`tableinator.rows`.

One table per data type holds each record whole (``data jsonb`` = ``Record.data``, the
source of truth) beside its ``hash``; releases and masters also carry a ``year int`` column
derived from the data at write time, so the year is indexable without casting inside an
index. ``version`` is the dump version that wrote the row's content; a narrow side table
``<type>_seen`` holds, per id, the newest dump version that carried the record, so marking
an unchanged record as seen never rewrites its document (tableinator.updates). Secondary
indexes are defined here so that bulk-load mode can drop and rebuild exactly the same set.
Table and index names come only from the fixed definitions below; every value travels as
a parameter or as COPY data. Rationale: docs/postgres.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import psycopg
from psycopg import errors, sql

from common.records import DataType
from common.sink import BatchRejected, TransientWriteError

BULK_LOAD_MODES: Final = frozenset({"auto", "true", "false"})
STATE_TABLE: Final = sql.Identifier("tableinator_state")
SCHEMA_LOCK_KEY: Final = "tableinator:schema"
_METHODS: Final = {"btree": sql.SQL("btree"), "gin": sql.SQL("gin")}


@dataclass(frozen=True, slots=True)
class Index:
    """A secondary index: ``CREATE INDEX name ON table USING method ((expression) opclass)``."""

    name: str
    method: str
    expression: str
    opclass: str = ""


@dataclass(frozen=True, slots=True)
class TableSpec:
    """Everything tableinator knows about one data type's table."""

    data_type: DataType
    # The data field the ``year`` column is derived from, or None when there is no column.
    year_source: str | None
    # Top-level text fields under a btree index (their size is checked at row building).
    indexed_text: tuple[str, ...]
    indexes: tuple[Index, ...]

    @property
    def table(self) -> sql.Identifier:
        return sql.Identifier(self.data_type.value)

    @property
    def stage(self) -> sql.Identifier:
        return sql.Identifier(f"stage_{self.data_type.value}")

    @property
    def seen(self) -> sql.Identifier:
        return sql.Identifier(f"{self.data_type.value}_seen")

    @property
    def columns(self) -> tuple[str, ...]:
        base = ("data_id", "hash", "data", "version")
        return (*base, "year") if self.year_source else base

    @property
    def copy_types(self) -> list[str]:
        base = ["text", "text", "bytea", "text"]
        return [*base, "int4"] if self.year_source else base

    @property
    def lock_key(self) -> str:
        return f"tableinator:{self.data_type.value}"

    @property
    def purge_lock_key(self) -> str:
        """Held shared by every write of the type, exclusively by a purge chunk."""
        return f"tableinator:{self.data_type.value}:purge"


def _text_indexes(table: str, field: str) -> tuple[Index, ...]:
    expr = f"data->>'{field}'"
    return (
        Index(f"{table}_{field}_idx", "btree", expr),
        Index(f"{table}_{field}_lower_idx", "btree", f"lower({expr})", "text_pattern_ops"),
    )


def _gin_index(table: str, field: str) -> Index:
    return Index(f"{table}_{field}_gin_idx", "gin", f"data->'{field}'", "jsonb_path_ops")


SPECS: Final[dict[DataType, TableSpec]] = {
    DataType.ARTISTS: TableSpec(
        DataType.ARTISTS, None, ("name",), _text_indexes("artists", "name")
    ),
    DataType.LABELS: TableSpec(DataType.LABELS, None, ("name",), _text_indexes("labels", "name")),
    DataType.MASTERS: TableSpec(
        DataType.MASTERS,
        "year",
        ("title",),
        (
            *_text_indexes("masters", "title"),
            Index("masters_year_idx", "btree", "year"),
            _gin_index("masters", "genres"),
            _gin_index("masters", "styles"),
        ),
    ),
    DataType.RELEASES: TableSpec(
        DataType.RELEASES,
        "released",
        ("title", "country", "master_id"),
        (
            *_text_indexes("releases", "title"),
            Index("releases_year_idx", "btree", "year"),
            Index("releases_country_idx", "btree", "data->>'country'"),
            Index("releases_master_id_idx", "btree", "data->>'master_id'"),
            _gin_index("releases", "genres"),
            _gin_index("releases", "styles"),
            _gin_index("releases", "labels"),
        ),
    ),
}


# --- schema -------------------------------------------------------------------------


def create_table(spec: TableSpec) -> sql.Composed:
    year = sql.SQL(" year integer,") if spec.year_source else sql.SQL("")
    return sql.SQL(
        "CREATE TABLE IF NOT EXISTS {} (data_id text PRIMARY KEY, hash text NOT NULL,"
        " data jsonb NOT NULL, version text,{} updated_at timestamptz NOT NULL DEFAULT now())"
    ).format(spec.table, year)


def create_state_table() -> sql.Composed:
    return sql.SQL(
        "CREATE TABLE IF NOT EXISTS {} (data_type text PRIMARY KEY,"
        " indexes_dropped boolean NOT NULL DEFAULT false, file_complete_version text,"
        " updated_at timestamptz NOT NULL DEFAULT now())"
    ).format(STATE_TABLE)


def schema_statements() -> list[sql.Composed]:
    """Every table, in creation order; each statement is safe to re-run."""
    return [
        create_state_table(),
        *(create_table(spec) for spec in SPECS.values()),
    ]


def create_index(spec: TableSpec, index: Index) -> sql.Composed:
    opclass = sql.SQL(" " + index.opclass) if index.opclass else sql.SQL("")
    return sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING {} (({}){})").format(
        sql.Identifier(index.name),
        spec.table,
        _METHODS[index.method],
        sql.SQL(index.expression),  # a constant of this module, never input
        opclass,
    )


def drop_index(index: Index) -> sql.Composed:
    return sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(index.name))


def analyze(spec: TableSpec) -> sql.Composed:
    return sql.SQL("ANALYZE {}").format(spec.table)


def is_empty(spec: TableSpec) -> sql.Composed:
    return sql.SQL("SELECT NOT EXISTS (SELECT 1 FROM {})").format(spec.table)


# --- bulk-load state (parameters: the data type) -------------------------------------

ADVISORY_LOCK: Final = sql.SQL("SELECT pg_advisory_xact_lock(hashtext(%s))")
# A write of a type holds its purge lock shared, a purge chunk exclusively (ADVISORY_LOCK):
# a chunk deletes only once the writes in flight (another replica's) have committed their
# stamps, and a write that starts meanwhile sees what the chunk deleted, so it writes the
# row anew instead of finding it unchanged and stamping a row that is gone.
SHARED_LOCK: Final = sql.SQL("SELECT pg_advisory_xact_lock_shared(hashtext(%s))")
READ_FLAG: Final = sql.SQL("SELECT indexes_dropped FROM {} WHERE data_type = %s").format(
    STATE_TABLE
)
SET_FLAG: Final = sql.SQL(
    "INSERT INTO {} (data_type, indexes_dropped) VALUES (%s, %s) ON CONFLICT (data_type)"
    " DO UPDATE SET indexes_dropped = EXCLUDED.indexes_dropped, updated_at = now()"
).format(STATE_TABLE)
# Index builds (GIN above all) are much faster with more sort memory; local to the rebuild.
REBUILD_MEMORY: Final = sql.SQL("SET LOCAL maintenance_work_mem = '256MB'")
# Indexes built at once when bulk-load mode ends (each on its own connection and core).
REBUILD_WORKERS: Final = 2
# Parameter: a list of index names; returns those that do not exist.
MISSING_INDEXES: Final = sql.SQL(
    "SELECT name FROM unnest(%s::text[]) AS name WHERE to_regclass(quote_ident(name)) IS NULL"
)


# --- TOAST compression ------------------------------------------------------------------

# Fails with InvalidParameterValue on a server built without lz4 (run it in a savepoint).
LZ4_PROBE: Final = sql.SQL("SET LOCAL default_toast_compression = 'lz4'")
# Parameter: the table name. 'l' is lz4, 'p' pglz, '' the server default.
DATA_COMPRESSION: Final = sql.SQL(
    "SELECT attcompression::text FROM pg_attribute WHERE attrelid = to_regclass(%s)"
    " AND attname = 'data'"
)


def use_lz4(spec: TableSpec) -> sql.Composed:
    """Compress new documents with lz4 (a catalogue change: stored rows stay as they are)."""
    return sql.SQL("ALTER TABLE {} ALTER COLUMN data SET COMPRESSION lz4").format(spec.table)


# --- write path -----------------------------------------------------------------------


def _column_list(spec: TableSpec) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(c) for c in spec.columns)


def create_stage(spec: TableSpec, *, lz4: bool = False) -> sql.Composed:
    """A temp table living until the end of the current transaction.

    ``lz4``: compress the staged documents with lz4 rather than the default pglz, which
    costs about three times as much CPU on release-sized documents.
    """
    year = sql.SQL(", year integer") if spec.year_source else sql.SQL("")
    compression = sql.SQL(" COMPRESSION lz4") if lz4 else sql.SQL("")
    return sql.SQL(
        "CREATE TEMP TABLE {} (data_id text NOT NULL, hash text NOT NULL,"
        " data bytea{} NOT NULL, version text{}) ON COMMIT DROP"
    ).format(spec.stage, compression, year)


def copy_stage(spec: TableSpec) -> sql.Composed:
    return sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(spec.stage, _column_list(spec))


def merge(spec: TableSpec) -> sql.Composed:
    """Upsert the staged rows; a row whose hash is unchanged is neither parsed nor rewritten.

    The filter skips unchanged rows before their JSON is parsed into jsonb (the bulk of the
    server's work). It is a correlated scalar subquery on purpose: PostgreSQL runs it as one
    primary-key probe per staged row, whereas an anti-join may be planned as a hash join
    over the whole table once the table has statistics and the unanalysed stage has none.
    The ``ON CONFLICT ... WHERE`` repeats the test under the row lock, for a concurrent
    writer, and refuses to replace content stored from a newer dump version (when both
    versions are known): a stale redelivery cannot undo this month's record.
    ``ORDER BY data_id`` makes concurrent merges take row locks in one order. Each
    written row returns whether it was inserted (``xmax = 0``) rather than updated.
    """
    staged: list[sql.Composable] = [sql.SQL("s.{}").format(sql.Identifier(c)) for c in spec.columns]
    staged[2] = sql.SQL("convert_from(s.data, 'UTF8')::jsonb")  # validates, then parses
    updates = [sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in spec.columns[1:]]
    return sql.SQL(
        "INSERT INTO {t} AS t ({cols}) SELECT {staged} FROM {stage} AS s"
        " WHERE s.hash IS DISTINCT FROM (SELECT o.hash FROM {t} AS o WHERE o.data_id = s.data_id)"
        " ORDER BY s.data_id"
        " ON CONFLICT (data_id) DO UPDATE SET {updates}, updated_at = now()"
        " WHERE t.hash IS DISTINCT FROM EXCLUDED.hash AND (t.version IS NULL"
        " OR EXCLUDED.version IS NULL OR t.version <= EXCLUDED.version)"
        " RETURNING (t.xmax = 0)"
    ).format(
        t=spec.table,
        cols=_column_list(spec),
        staged=sql.SQL(", ").join(staged),
        stage=spec.stage,
        updates=sql.SQL(", ").join(updates),
    )


# --- errors ---------------------------------------------------------------------------


def classify(error: psycopg.Error) -> TransientWriteError | BatchRejected | None:
    """The runtime's view of a driver error, or None when it is neither (a bug)."""
    name = type(error).__name__
    sqlstate = error.sqlstate or "-"
    if isinstance(error, errors.ProgramLimitExceeded | psycopg.DataError | psycopg.IntegrityError):
        return BatchRejected(f"{name} ({sqlstate}): {error}")
    if isinstance(error, psycopg.OperationalError):
        # Includes PoolTimeout, AdminShutdown, CannotConnectNow, SerializationFailure,
        # DeadlockDetected and a connection lost mid-statement.
        return TransientWriteError(f"{name} ({sqlstate}): {error}")
    return None
