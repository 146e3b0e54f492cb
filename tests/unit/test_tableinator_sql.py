"""tableinator.sql without a database: definitions, statements, rows, error mapping."""

from __future__ import annotations

from dataclasses import replace

import orjson
import psycopg
import pytest
from psycopg import errors
from psycopg import sql as psql
from psycopg_pool import PoolClosed, PoolTimeout

from common.normalise import normalise
from common.records import DataType, Record
from common.sink import BatchRejected, TransientWriteError
from tableinator import rows as copy_rows
from tableinator import sql, updates


def text(statement: psql.Composable) -> str:
    return statement.as_string()


def release(record_id: object = "1", **fields: object) -> Record:
    return normalise(DataType.RELEASES, {"id": record_id, **fields})


# --- definitions --------------------------------------------------------------------


def test_every_data_type_has_its_own_table() -> None:
    assert set(sql.SPECS) == set(DataType)
    for data_type, spec in sql.SPECS.items():
        assert spec.data_type is data_type
        assert text(spec.table) == f'"{data_type.value}"'
        assert text(spec.stage) == f'"stage_{data_type.value}"'
        assert text(spec.seen) == f'"{data_type.value}_seen"'
        assert spec.lock_key == f"tableinator:{data_type.value}"


@pytest.mark.parametrize(
    ("data_type", "columns", "types"),
    [
        (
            DataType.ARTISTS,
            ("data_id", "hash", "data", "version"),
            ["text", "text", "bytea", "text"],
        ),
        (
            DataType.LABELS,
            ("data_id", "hash", "data", "version"),
            ["text", "text", "bytea", "text"],
        ),
        (
            DataType.MASTERS,
            ("data_id", "hash", "data", "version", "year"),
            ["text", "text", "bytea", "text", "int4"],
        ),
        (
            DataType.RELEASES,
            ("data_id", "hash", "data", "version", "year"),
            ["text", "text", "bytea", "text", "int4"],
        ),
    ],
)
def test_columns_and_copy_types_line_up(
    data_type: DataType, columns: tuple[str, ...], types: list[str]
) -> None:
    spec = sql.SPECS[data_type]
    assert spec.columns == columns
    assert spec.copy_types == types


def test_index_names_are_unique_valid_identifiers_named_after_their_table() -> None:
    names = [index.name for spec in sql.SPECS.values() for index in spec.indexes]
    assert len(names) == len(set(names))
    for spec in sql.SPECS.values():
        for index in spec.indexes:
            assert index.name.startswith(f"{spec.data_type.value}_")
            assert len(index.name) <= 63
            assert index.name.replace("_", "").isalnum()
            assert index.method in {"btree", "gin"}


def test_no_gin_index_covers_the_whole_document() -> None:
    gins = [i for spec in sql.SPECS.values() for i in spec.indexes if i.method == "gin"]
    assert gins
    for index in gins:
        assert index.expression.startswith("data->'")
        assert index.opclass == "jsonb_path_ops"


@pytest.mark.parametrize(
    ("data_type", "expected"),
    [
        (DataType.ARTISTS, {"name", "name_lower"}),
        (DataType.LABELS, {"name", "name_lower"}),
        (
            DataType.MASTERS,
            {"title", "title_lower", "year", "genres_gin", "styles_gin"},
        ),
        (
            DataType.RELEASES,
            {
                "title",
                "title_lower",
                "year",
                "country",
                "master_id",
                "genres_gin",
                "styles_gin",
                "labels_gin",
            },
        ),
    ],
)
def test_indexes_per_type(data_type: DataType, expected: set[str]) -> None:
    prefix = f"{data_type.value}_"
    names = {i.name.removeprefix(prefix).removesuffix("_idx") for i in sql.SPECS[data_type].indexes}
    assert names == expected


def test_indexed_text_fields_are_the_btree_indexed_ones() -> None:
    assert sql.SPECS[DataType.ARTISTS].indexed_text == ("name",)
    assert sql.SPECS[DataType.LABELS].indexed_text == ("name",)
    assert sql.SPECS[DataType.MASTERS].indexed_text == ("title",)
    assert sql.SPECS[DataType.RELEASES].indexed_text == ("title", "country", "master_id")


# --- schema statements ------------------------------------------------------------------


def test_tables_have_the_required_columns_and_are_safe_to_recreate() -> None:
    for spec in sql.SPECS.values():
        statement = text(sql.create_table(spec))
        assert statement.startswith(f"CREATE TABLE IF NOT EXISTS {text(spec.table)} (")
        for column in (
            "data_id text PRIMARY KEY",
            "hash text NOT NULL",
            "data jsonb NOT NULL",
            "version text,",
            "updated_at timestamptz NOT NULL DEFAULT now()",
        ):
            assert column in statement
        assert ("year integer" in statement) == (spec.year_source is not None)


def test_schema_statements_create_state_then_every_table() -> None:
    statements = [text(s) for s in sql.schema_statements()]
    assert statements[0] == text(sql.create_state_table())
    assert '"tableinator_state"' in statements[0]
    assert "indexes_dropped boolean NOT NULL DEFAULT false" in statements[0]
    assert "file_complete_version text" in statements[0]
    assert statements[1:] == [text(sql.create_table(spec)) for spec in sql.SPECS.values()]
    assert all("IF NOT EXISTS" in s for s in statements)


def test_index_statements() -> None:
    spec = sql.SPECS[DataType.RELEASES]
    by_name = {index.name: index for index in spec.indexes}
    assert text(sql.create_index(spec, by_name["releases_title_lower_idx"])) == (
        'CREATE INDEX IF NOT EXISTS "releases_title_lower_idx" ON "releases"'
        " USING btree ((lower(data->>'title')) text_pattern_ops)"
    )
    assert text(sql.create_index(spec, by_name["releases_labels_gin_idx"])) == (
        'CREATE INDEX IF NOT EXISTS "releases_labels_gin_idx" ON "releases"'
        " USING gin ((data->'labels') jsonb_path_ops)"
    )
    assert text(sql.create_index(spec, by_name["releases_year_idx"])) == (
        'CREATE INDEX IF NOT EXISTS "releases_year_idx" ON "releases" USING btree ((year))'
    )
    assert text(sql.drop_index(by_name["releases_year_idx"])) == (
        'DROP INDEX IF EXISTS "releases_year_idx"'
    )


def test_maintenance_statements() -> None:
    spec = sql.SPECS[DataType.LABELS]
    assert text(sql.analyze(spec)) == 'ANALYZE "labels"'
    assert text(sql.is_empty(spec)) == 'SELECT NOT EXISTS (SELECT 1 FROM "labels")'
    assert "%s" in text(sql.ADVISORY_LOCK)
    assert text(sql.READ_FLAG).count("%s") == 1
    assert text(sql.SET_FLAG).count("%s") == 2
    assert "ON CONFLICT (data_type)" in text(sql.SET_FLAG)
    assert text(sql.REBUILD_MEMORY).startswith("SET LOCAL ")


# --- write statements -----------------------------------------------------------------


def test_stage_is_a_temp_table_dropped_at_commit() -> None:
    for spec in sql.SPECS.values():
        statement = text(sql.create_stage(spec))
        assert statement.startswith(f"CREATE TEMP TABLE {text(spec.stage)} (")
        assert statement.endswith(" ON COMMIT DROP")
        assert "data bytea NOT NULL" in statement  # parsed into jsonb only if changed
        assert "version text" in statement
        assert ("year integer" in statement) == (spec.year_source is not None)


def test_stage_documents_can_be_compressed_with_lz4() -> None:
    for spec in sql.SPECS.values():
        assert "data bytea COMPRESSION lz4 NOT NULL" in text(sql.create_stage(spec, lz4=True))
        assert "COMPRESSION" not in text(sql.create_stage(spec))
        assert text(sql.use_lz4(spec)) == (
            f"ALTER TABLE {text(spec.table)} ALTER COLUMN data SET COMPRESSION lz4"
        )
    assert text(sql.LZ4_PROBE).startswith("SET LOCAL ")
    assert text(sql.DATA_COMPRESSION).count("%s") == 1


def test_missing_indexes_takes_the_names_as_one_parameter() -> None:
    statement = text(sql.MISSING_INDEXES)
    assert statement.count("%s") == 1
    assert "to_regclass" in statement


def test_copy_is_binary_into_the_stage_in_column_order() -> None:
    assert text(sql.copy_stage(sql.SPECS[DataType.RELEASES])) == (
        'COPY "stage_releases" ("data_id", "hash", "data", "version", "year")'
        " FROM STDIN (FORMAT BINARY)"
    )
    assert text(sql.copy_stage(sql.SPECS[DataType.ARTISTS])) == (
        'COPY "stage_artists" ("data_id", "hash", "data", "version") FROM STDIN (FORMAT BINARY)'
    )


VERSION_GUARD = (
    " WHERE t.hash IS DISTINCT FROM EXCLUDED.hash AND (t.version IS NULL"
    " OR EXCLUDED.version IS NULL OR t.version <= EXCLUDED.version) RETURNING (t.xmax = 0)"
)


def test_merge_parses_and_rewrites_only_changed_rows_never_newer_ones() -> None:
    assert text(sql.merge(sql.SPECS[DataType.MASTERS])) == (
        'INSERT INTO "masters" AS t ("data_id", "hash", "data", "version", "year")'
        ' SELECT s."data_id", s."hash", convert_from(s.data, \'UTF8\')::jsonb, s."version",'
        ' s."year" FROM "stage_masters" AS s WHERE s.hash IS DISTINCT FROM'
        ' (SELECT o.hash FROM "masters" AS o WHERE o.data_id = s.data_id) ORDER BY s.data_id'
        ' ON CONFLICT (data_id) DO UPDATE SET "hash" = EXCLUDED."hash",'
        ' "data" = EXCLUDED."data", "version" = EXCLUDED."version", "year" = EXCLUDED."year",'
        " updated_at = now()" + VERSION_GUARD
    )
    assert text(sql.merge(sql.SPECS[DataType.LABELS])) == (
        'INSERT INTO "labels" AS t ("data_id", "hash", "data", "version")'
        ' SELECT s."data_id", s."hash", convert_from(s.data, \'UTF8\')::jsonb, s."version"'
        ' FROM "stage_labels" AS s WHERE s.hash IS DISTINCT FROM'
        ' (SELECT o.hash FROM "labels" AS o WHERE o.data_id = s.data_id) ORDER BY s.data_id'
        ' ON CONFLICT (data_id) DO UPDATE SET "hash" = EXCLUDED."hash",'
        ' "data" = EXCLUDED."data", "version" = EXCLUDED."version", updated_at = now()'
        + VERSION_GUARD
    )


# --- rows -----------------------------------------------------------------------------


def test_rows_carry_id_hash_and_the_whole_record_as_json() -> None:
    record = normalise(DataType.ARTISTS, {"id": 7, "name": "A", "urls": ["u"]})
    [row] = copy_rows.build_rows(sql.SPECS[DataType.ARTISTS], [record])
    assert len(row) == 4
    assert row[:2] == ("7", record.stored_hash)
    assert isinstance(row[2], bytes)
    assert orjson.loads(row[2]) == record.data
    assert row[3] is None  # no version given


def test_rows_reuse_the_normalisers_serialisation_and_encode_records_without_one() -> None:
    record = normalise(DataType.ARTISTS, {"id": 7, "name": "A", "profile": "p"})
    assert record.encoded is not None
    [row] = copy_rows.build_rows(sql.SPECS[DataType.ARTISTS], [record])
    assert row[2] is record.encoded
    bare = Record(id="7", sha256=record.sha256, data=record.data)
    [row] = copy_rows.build_rows(sql.SPECS[DataType.ARTISTS], [bare])
    assert orjson.loads(row[2]) == record.data


def test_slim_records_keep_what_the_writer_reads_and_give_the_same_rows() -> None:
    whole = release("9", title="T", country="UK", released="1999-02-00", notes="n" * 500)
    whole = replace(whole, version="20260101")
    slim = copy_rows.slim_record(DataType.RELEASES, whole)
    assert slim.data == {"title": "T", "country": "UK", "released": "1999-02-00"}
    assert (slim.id, slim.sha256, slim.version, slim.encoded) == (
        whole.id,
        whole.sha256,
        whole.version,
        whole.encoded,
    )
    spec = sql.SPECS[DataType.RELEASES]
    assert copy_rows.build_rows(spec, [slim]) == copy_rows.build_rows(spec, [whole])
    artist = normalise(DataType.ARTISTS, {"id": 1, "name": "N", "profile": "p"})
    assert copy_rows.slim_record(DataType.ARTISTS, artist).data == {"name": "N"}
    bare = Record(id="1", sha256="h", data={"name": "N", "profile": "p"})
    assert copy_rows.slim_record(DataType.ARTISTS, bare) is bare  # no canonical JSON: kept whole


def test_rows_carry_the_dump_version() -> None:
    record = replace(release("8", title="t", released="1999"), version="20260201")
    [row] = copy_rows.build_rows(sql.SPECS[DataType.RELEASES], [record])
    assert row[3:] == ("20260201", 1999)


@pytest.mark.parametrize("version", ["2026-02-01", "202602", "", "20260201x"])
def test_version_that_is_not_a_dump_date_rejects_naming_the_record(version: str) -> None:
    record = replace(release("8", title="t"), version=version)
    with pytest.raises(BatchRejected, match=r"record 8: version .* is not YYYYMMDD"):
        copy_rows.build_rows(sql.SPECS[DataType.RELEASES], [record])


@pytest.mark.parametrize(
    ("released", "year"),
    [("1999-03-00", 1999), ("1987", 1987), ("unknown", None), (None, None), ("0000", None)],
)
def test_release_year_is_derived_from_released(released: str | None, year: int | None) -> None:
    record = release(title="t", released=released)
    [row] = copy_rows.build_rows(sql.SPECS[DataType.RELEASES], [record])
    assert len(row) == 5
    assert row[4] == year


@pytest.mark.parametrize(("given", "year"), [(1969, 1969), ("1969", 1969), (None, None)])
def test_master_year_is_taken_from_year(given: object, year: int | None) -> None:
    record = normalise(DataType.MASTERS, {"id": "1", "title": "t", "year": given})
    [row] = copy_rows.build_rows(sql.SPECS[DataType.MASTERS], [record])
    assert len(row) == 5
    assert row[4] == year


def test_no_records_no_rows() -> None:
    assert copy_rows.build_rows(sql.SPECS[DataType.LABELS], []) == []


def test_duplicate_ids_keep_the_later_record() -> None:
    records = [release("1", title="a"), release("2", title="b"), release("1", title="c")]
    rows = copy_rows.build_rows(sql.SPECS[DataType.RELEASES], records)
    assert [(row[0], orjson.loads(row[2])["title"]) for row in rows] == [("1", "c"), ("2", "b")]


def test_integer_and_string_ids_are_one_row() -> None:
    rows = copy_rows.build_rows(
        sql.SPECS[DataType.RELEASES], [release(123, title="a"), release("123", title="b")]
    )
    assert [row[0] for row in rows] == ["123"]


@pytest.mark.parametrize(
    "data",
    [
        {"id": "9", "title": "lone \ud800 surrogate"},
        {"id": "9", "notes": {"deep": ["\udfff"]}},
        {"id": "9", "huge": 2**70},
    ],
)
def test_unencodable_data_rejects_naming_the_record(data: dict[str, object]) -> None:
    good = release("1", title="fine")
    with pytest.raises(BatchRejected, match="record 9: data cannot be encoded as JSON"):
        copy_rows.build_rows(sql.SPECS[DataType.RELEASES], [good, Record("9", "h", data)])


def test_hash_that_is_not_unicode_rejects_naming_the_record() -> None:
    bad = Record("5", "ab\ud800", {"id": "5"})
    with pytest.raises(BatchRejected, match="record 5: sha256 is not valid Unicode"):
        copy_rows.build_rows(sql.SPECS[DataType.ARTISTS], [bad])


@pytest.mark.parametrize(
    ("data_type", "field"),
    [
        (DataType.ARTISTS, "name"),
        (DataType.LABELS, "name"),
        (DataType.MASTERS, "title"),
        (DataType.RELEASES, "title"),
        (DataType.RELEASES, "country"),
    ],
)
def test_indexed_text_longer_than_an_index_entry_rejects(data_type: DataType, field: str) -> None:
    spec = sql.SPECS[data_type]
    limit = "é" * (copy_rows.MAX_INDEXED_TEXT_BYTES // 2)
    ok = Record("1", "h", {"id": "1", field: limit})
    assert len(copy_rows.build_rows(spec, [ok])) == 1
    too_long = Record("2", "h", {"id": "2", field: limit + "x"})
    with pytest.raises(BatchRejected, match=f"record 2: {field} is 1801 bytes"):
        copy_rows.build_rows(spec, [too_long])


def test_indexed_text_is_measured_after_lower_too() -> None:
    spec = sql.SPECS[DataType.ARTISTS]
    dotted = "\u0130" * 601  # 1,202 bytes; lower() gives 1,803
    with pytest.raises(BatchRejected, match="name is 1803 bytes"):
        copy_rows.build_rows(spec, [Record("3", "h", {"id": "3", "name": dotted})])


def test_long_text_outside_indexes_and_non_text_values_are_fine() -> None:
    record = release("4", title=12345, notes="n" * 100_000, country="Sweden")
    [row] = copy_rows.build_rows(sql.SPECS[DataType.RELEASES], [record])
    assert orjson.loads(row[2]) == record.data


# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        psycopg.OperationalError("connection lost"),
        PoolTimeout("no connection in 10 s"),
        PoolClosed("pool closed"),
        errors.AdminShutdown("terminating connection due to administrator command"),
        errors.CannotConnectNow("the database system is starting up"),
        errors.SerializationFailure("could not serialize access"),
        errors.DeadlockDetected("deadlock detected"),
        errors.DiskFull("no space left"),
        errors.TooManyConnections("too many clients"),
    ],
)
def test_outages_are_transient(error: psycopg.Error) -> None:
    mapped = sql.classify(error)
    assert isinstance(mapped, TransientWriteError)
    assert type(error).__name__ in str(mapped)


@pytest.mark.parametrize(
    "error",
    [
        psycopg.DataError("bad data"),
        errors.UntranslatableCharacter("unsupported Unicode escape sequence"),
        errors.InvalidTextRepresentation("invalid input syntax"),
        errors.CharacterNotInRepertoire("invalid byte sequence"),
        errors.ProgramLimitExceeded("index row size exceeds maximum"),
        errors.NotNullViolation("null value"),
        psycopg.IntegrityError("constraint"),
    ],
)
def test_data_errors_reject_the_batch(error: psycopg.Error) -> None:
    mapped = sql.classify(error)
    assert isinstance(mapped, BatchRejected)
    assert str(error) in str(mapped)


@pytest.mark.parametrize(
    "error",
    [
        psycopg.ProgrammingError("syntax error"),
        errors.UndefinedTable("no such table"),
        psycopg.InterfaceError("misuse"),
        errors.InternalError_("internal"),
    ],
)
def test_bugs_are_left_alone(error: psycopg.Error) -> None:
    assert sql.classify(error) is None


def test_bulk_load_modes() -> None:
    assert frozenset({"auto", "true", "false"}) == sql.BULK_LOAD_MODES


# --- monthly updates (tableinator.updates) ---------------------------------------------


def test_seen_tables_are_narrow_and_safe_to_recreate() -> None:
    statements = [text(s) for s in updates.schema_statements()]
    assert statements == [
        f"CREATE TABLE IF NOT EXISTS {text(spec.seen)}"
        " (data_id text PRIMARY KEY, version text NOT NULL)"
        for spec in sql.SPECS.values()
    ]


def test_added_columns_come_from_a_fixed_list() -> None:
    assert ("releases", "version") in updates.ADDED_COLUMNS
    assert ("tableinator_state", "file_complete_version") in updates.ADDED_COLUMNS
    assert text(updates.add_column("releases", "version")) == (
        'ALTER TABLE "releases" ADD COLUMN IF NOT EXISTS "version" text'
    )
    with pytest.raises(ValueError, match="not a known added column"):
        updates.add_column("releases", "data")
    assert text(updates.COLUMN_MISSING).count("%s") == 2


def test_mark_seen_stamps_only_older_or_missing_and_never_goes_back() -> None:
    assert text(updates.mark_seen(sql.SPECS[DataType.ARTISTS])) == (
        'INSERT INTO "artists_seen" AS v (data_id, version) SELECT s.data_id, s.version'
        ' FROM "stage_artists" AS s WHERE s.version > coalesce((SELECT o.version'
        " FROM \"artists_seen\" AS o WHERE o.data_id = s.data_id), '')"
        " ORDER BY s.data_id ON CONFLICT (data_id) DO UPDATE SET version = EXCLUDED.version"
        " WHERE v.version < EXCLUDED.version"
    )


def test_file_complete_state_statements() -> None:
    assert text(updates.READ_FILE_COMPLETE).count("%s") == 1
    assert text(updates.SET_FILE_COMPLETE).count("%s") == 2
    assert '"tableinator_state"' in text(updates.SET_FILE_COMPLETE)
    assert "ON CONFLICT (data_type)" in text(updates.SET_FILE_COMPLETE)


def test_purge_counts_and_chunk() -> None:
    spec = sql.SPECS[DataType.LABELS]
    assert text(updates.count_stored(spec)) == 'SELECT count(*) FROM "labels"'
    assert text(updates.count_seen(spec)) == (
        'SELECT count(*) FROM "labels_seen" WHERE version = %s'
    )
    chunk = text(updates.purge_chunk(spec))
    for param in ("%(version)s", "%(after)s", "%(limit)s"):
        assert chunk.count(param) == 1
    assert "v.version >= %(version)s" in chunk  # a newer stamp is never purged
    assert 'DELETE FROM "labels" AS t' in chunk
    assert 'DELETE FROM "labels_seen" AS v' in chunk
    assert "WHERE data_id > %(after)s ORDER BY data_id LIMIT %(limit)s" in chunk
