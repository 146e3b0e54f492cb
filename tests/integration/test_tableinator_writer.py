"""PostgresWriter against the real server: a fresh database per test (``pg_dsn``)."""

from __future__ import annotations

import asyncio
import functools
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql as psql
from psycopg_pool import AsyncConnectionPool

from common.messages import ExtractionComplete, FileComplete
from common.normalise import normalise
from common.records import DataType, Record, release_year
from common.sink import BatchRejected, TransientWriteError
from extractor.xmlparse import DumpFile, iter_records
from tableinator import rows as copy_rows
from tableinator import sql
from tableinator.writer import PostgresWriter

pytestmark = pytest.mark.integration

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"
ALL_TYPES = tuple(DataType)


@functools.cache
def sample(data_type: DataType) -> tuple[Record, ...]:
    path = SAMPLES / f"discogs_20200806_{data_type.value}.xml.gz"
    return tuple(iter_records(DumpFile.from_path(path)))


@pytest.fixture
async def pool(pg_dsn: str) -> AsyncIterator[AsyncConnectionPool[Any]]:
    p: AsyncConnectionPool[Any] = AsyncConnectionPool(
        pg_dsn, open=False, min_size=1, max_size=4, timeout=10
    )
    await p.open(wait=True)
    try:
        yield p
    finally:
        await p.close()


async def started(pool: AsyncConnectionPool[Any], bulk_load: str = "auto") -> PostgresWriter:
    writer = PostgresWriter(pool=pool, bulk_load=bulk_load)
    await writer.setup()
    return writer


async def load(writer: PostgresWriter, data_type: DataType, records: tuple[Record, ...]) -> int:
    written = 0
    for start in range(0, len(records), 300):
        batch = records[start : start + 300]
        result = await writer.write(data_type, batch)
        assert result.written + result.unchanged == len(batch)
        written += result.written
    return written


async def fetch(pool: AsyncConnectionPool[Any], query: psql.Composable) -> list[tuple[Any, ...]]:
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(query)
        rows: list[tuple[Any, ...]] = await cur.fetchall()
        return rows


async def rows_of(
    pool: AsyncConnectionPool[Any], data_type: DataType
) -> dict[str, tuple[Any, ...]]:
    """data_id -> (hash, data, xmin) for every row of the type's table."""
    query = psql.SQL("SELECT data_id, hash, data, xmin::text FROM {}").format(
        psql.Identifier(data_type.value)
    )
    return {row[0]: row[1:] for row in await fetch(pool, query)}


async def secondary_indexes(pool: AsyncConnectionPool[Any], data_type: DataType) -> set[str]:
    query = psql.SQL(
        "SELECT indexname FROM pg_indexes WHERE tablename = {} AND indexname NOT LIKE '%pkey'"
    ).format(psql.Literal(data_type.value))
    return {row[0] for row in await fetch(pool, query)}


def all_indexes(data_type: DataType) -> set[str]:
    return {index.name for index in sql.SPECS[data_type].indexes}


def file_complete(data_type: DataType) -> FileComplete:
    return FileComplete(data_type, f"discogs_20200806_{data_type.value}.xml.gz", 1000, "20200806")


def release(record_id: object, **fields: Any) -> Record:
    return normalise(DataType.RELEASES, {"id": record_id, **fields})


async def test_samples_load_exactly_then_only_changes_are_rewritten(
    pool: AsyncConnectionPool[Any],
) -> None:
    writer = await started(pool)
    for data_type in ALL_TYPES:
        assert await load(writer, data_type, sample(data_type)) == 1000
        await writer.file_complete(file_complete(data_type))
        rows = await rows_of(pool, data_type)
        assert len(rows) == 1000
        for record in sample(data_type):
            assert rows[record.id][:2] == (record.stored_hash, record.data)

    for data_type in ALL_TYPES:
        before = await rows_of(pool, data_type)
        assert await load(writer, data_type, sample(data_type)) == 0
        assert await rows_of(pool, data_type) == before  # same xmin: no row rewritten

    before = await rows_of(pool, DataType.RELEASES)
    old = sample(DataType.RELEASES)[500]
    changed = Record(old.id, "f" * 64, {**old.data, "title": "Changed title"})
    result = await writer.write(DataType.RELEASES, [changed, *sample(DataType.RELEASES)[:10]])
    assert (result.written, result.unchanged) == (1, 10)
    after = await rows_of(pool, DataType.RELEASES)
    assert after[old.id][:2] == (changed.stored_hash, changed.data)
    assert {k for k in after if after[k] != before[k]} == {old.id}


async def test_release_year_column_is_derived_from_released(
    pool: AsyncConnectionPool[Any],
) -> None:
    writer = await started(pool)
    records = sample(DataType.RELEASES)
    await load(writer, DataType.RELEASES, records)
    years = dict(await fetch(pool, psql.SQL("SELECT data_id, year FROM releases")))
    assert years == {r.id: release_year(r.data.get("released")) for r in records}
    assert any(year is not None for year in years.values())


async def test_awkward_text_round_trips_exactly(pool: AsyncConnectionPool[Any]) -> None:
    awkward = "tab\there\nnewline\r\nback\\slash \\N \\. \"double\" 'single' é 漢字 🎵 \x7f end"
    writer = await started(pool)
    record = release("7", title=awkward, notes=awkward * 3, genres=[awkward])
    await writer.write(DataType.RELEASES, [record])
    rows = await fetch(
        pool, psql.SQL("SELECT data, data->>'title', data->'genres'->>0 FROM releases")
    )
    assert rows == [(record.data, awkward, awkward)]


async def test_release_with_two_thousand_tracks(pool: AsyncConnectionPool[Any]) -> None:
    tracks = [{"position": str(i), "title": f"Track {i}", "duration": "3:00"} for i in range(2000)]
    record = release("42", title="Long box", tracklist=tracks)
    assert len(record.data["tracklist"]) == 2000
    writer = await started(pool)
    assert (await writer.write(DataType.RELEASES, [record])).written == 1
    assert (await rows_of(pool, DataType.RELEASES))["42"][1] == record.data


async def test_integer_and_string_ids_are_one_row(pool: AsyncConnectionPool[Any]) -> None:
    writer = await started(pool)
    as_int, as_str = release(123, title="int"), release("123", title="str")
    await writer.write(DataType.RELEASES, [as_int])
    await writer.write(DataType.RELEASES, [as_str])
    assert {k: v[1]["title"] for k, v in (await rows_of(pool, DataType.RELEASES)).items()} == {
        "123": "str"
    }
    result = await writer.write(DataType.RELEASES, [as_str, as_int])
    assert (result.written, result.unchanged) == (1, 1)
    assert (await rows_of(pool, DataType.RELEASES))["123"][1]["title"] == "int"


async def test_duplicate_ids_in_one_write_the_later_wins(pool: AsyncConnectionPool[Any]) -> None:
    writer = await started(pool)
    first, second, other = release("1", title="a"), release("1", title="b"), release("2", title="c")
    result = await writer.write(DataType.RELEASES, [first, other, second])
    assert (result.written, result.unchanged) == (2, 1)
    rows = await rows_of(pool, DataType.RELEASES)
    assert (rows["1"][1], rows["2"][1]) == (second.data, other.data)


async def test_unencodable_record_rejects_the_batch_and_writes_nothing(
    pool: AsyncConnectionPool[Any],
) -> None:
    writer = await started(pool)
    await writer.write(DataType.RELEASES, [release("1", title="kept")])
    before = await rows_of(pool, DataType.RELEASES)
    bad = Record("66", "h", {"id": "66", "title": "lone \ud800 surrogate"})
    with pytest.raises(BatchRejected, match="record 66"):
        await writer.write(DataType.RELEASES, [release("1", title="new"), bad])
    assert await rows_of(pool, DataType.RELEASES) == before


async def test_value_the_server_refuses_rejects_the_batch_and_writes_nothing(
    pool: AsyncConnectionPool[Any],
) -> None:
    writer = await started(pool)
    await writer.write(DataType.ARTISTS, [normalise(DataType.ARTISTS, {"id": "1", "name": "x"})])
    before = await rows_of(pool, DataType.ARTISTS)
    good = Record("2", "h", {"id": "2", "name": "good"})
    nul_hash = Record("3", "abc\x00def", {"id": "3", "name": "bad"})  # text cannot hold NUL
    with pytest.raises(BatchRejected) as info:
        await writer.write(DataType.ARTISTS, [good, nul_hash])
    assert isinstance(info.value.__cause__, psycopg.DataError)
    assert await rows_of(pool, DataType.ARTISTS) == before


async def test_longest_accepted_indexed_text_fits_every_index(
    pool: AsyncConnectionPool[Any],
) -> None:
    writer = await started(pool, bulk_load="false")
    assert await secondary_indexes(pool, DataType.RELEASES) == all_indexes(DataType.RELEASES)
    rng = random.Random(7)
    noise = "".join(chr(rng.randrange(0x4E00, 0x9FFF)) for _ in range(600))  # incompressible
    assert len(noise.encode()) == copy_rows.MAX_INDEXED_TEXT_BYTES
    dotted = "\u0130" * 600  # 1,200 bytes; lower() makes it 1,800
    result = await writer.write(
        DataType.RELEASES, [release("1", title=noise), release("2", title=dotted, country=noise)]
    )
    assert result.written == 2
    with pytest.raises(BatchRejected, match="record 3: title"):
        await writer.write(DataType.RELEASES, [release("3", title=noise + "x")])


async def test_unreachable_server_is_transient() -> None:
    dead: AsyncConnectionPool[Any] = AsyncConnectionPool(
        "host=127.0.0.1 port=1 user=nobody dbname=none connect_timeout=1",
        open=False,
        min_size=1,
        max_size=1,
        timeout=0.5,
    )
    await dead.open(wait=False)
    try:
        writer = PostgresWriter(pool=dead)
        with pytest.raises(TransientWriteError) as info:
            await writer.write(DataType.RELEASES, [release("1", title="t")])
        assert isinstance(info.value.__cause__, psycopg.OperationalError)
    finally:
        await dead.close()


async def wait_for_lock_waiter(admin: psycopg.AsyncConnection[Any], deadline: float) -> int:
    """The pid of the other backend of this database waiting on a lock."""
    while True:
        cur = await admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )
        row = await cur.fetchone()
        if row is not None:
            return int(row[0])
        assert time.monotonic() < deadline, "nothing ever blocked on the lock"
        await asyncio.sleep(0.02)


async def test_backend_killed_mid_write_is_transient_and_next_write_succeeds(
    pool: AsyncConnectionPool[Any], pg_dsn: str
) -> None:
    writer = await started(pool)
    admin = await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True)
    async with admin, admin.transaction():
        await admin.execute("LOCK TABLE releases IN ACCESS EXCLUSIVE MODE")
        write = asyncio.create_task(writer.write(DataType.RELEASES, sample(DataType.RELEASES)))
        pid = await wait_for_lock_waiter(admin, time.monotonic() + 10)
        await admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(TransientWriteError) as info:
            await write
        assert isinstance(info.value.__cause__, psycopg.OperationalError)
    assert await rows_of(pool, DataType.RELEASES) == {}
    assert (await writer.write(DataType.RELEASES, sample(DataType.RELEASES))).written == 1000


async def test_bulk_load_drops_indexes_of_empty_tables_and_file_complete_rebuilds(
    pool: AsyncConnectionPool[Any],
) -> None:
    writer = await started(pool)
    for data_type in ALL_TYPES:
        assert await writer.indexes_dropped(data_type)
        assert await secondary_indexes(pool, data_type) == set()
    await load(writer, DataType.LABELS, sample(DataType.LABELS))
    await writer.file_complete(file_complete(DataType.LABELS))
    assert not await writer.indexes_dropped(DataType.LABELS)
    assert await secondary_indexes(pool, DataType.LABELS) == all_indexes(DataType.LABELS)
    assert await secondary_indexes(pool, DataType.ARTISTS) == set()


async def test_restart_mid_load_stays_in_bulk_mode_until_file_complete(
    pool: AsyncConnectionPool[Any],
) -> None:
    first = await started(pool)
    await load(first, DataType.RELEASES, sample(DataType.RELEASES)[:400])
    restarted = await started(pool, bulk_load="false")  # the table holds data now
    assert await restarted.indexes_dropped(DataType.RELEASES)
    assert await secondary_indexes(pool, DataType.RELEASES) == set()
    await load(restarted, DataType.RELEASES, sample(DataType.RELEASES))
    await restarted.file_complete(file_complete(DataType.RELEASES))
    assert await secondary_indexes(pool, DataType.RELEASES) == all_indexes(DataType.RELEASES)
    assert not await restarted.indexes_dropped(DataType.RELEASES)
    await restarted.file_complete(file_complete(DataType.RELEASES))  # again: a no-op


async def test_table_with_data_keeps_its_indexes_unless_bulk_load_is_forced(
    pool: AsyncConnectionPool[Any],
) -> None:
    writer = await started(pool)
    await load(writer, DataType.MASTERS, sample(DataType.MASTERS))
    await writer.file_complete(file_complete(DataType.MASTERS))
    again = await started(pool, bulk_load="auto")
    assert not await again.indexes_dropped(DataType.MASTERS)
    assert await secondary_indexes(pool, DataType.MASTERS) == all_indexes(DataType.MASTERS)
    assert await again.indexes_dropped(DataType.ARTISTS)  # still empty
    forced = await started(pool, bulk_load="true")
    assert await forced.indexes_dropped(DataType.MASTERS)
    assert await secondary_indexes(pool, DataType.MASTERS) == set()


async def test_never_bulk_creates_indexes_at_setup_and_ensure_is_idempotent(
    pool: AsyncConnectionPool[Any],
) -> None:
    writer = await started(pool, bulk_load="false")
    for data_type in ALL_TYPES:
        assert not await writer.indexes_dropped(data_type)
        assert await secondary_indexes(pool, data_type) == all_indexes(data_type)
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("DROP INDEX releases_styles_gin_idx")
    done = ExtractionComplete("20200806", {"releases": 1000})
    await writer.extraction_complete(DataType.RELEASES, done, dead_letters=0)
    await writer.extraction_complete(DataType.RELEASES, done, dead_letters=0)
    await writer.ensure_indexes(DataType.RELEASES)
    assert await secondary_indexes(pool, DataType.RELEASES) == all_indexes(DataType.RELEASES)
    await started(pool, bulk_load="false")  # setup re-runs cleanly on an existing schema


async def test_documents_are_compressed_with_lz4(pool: AsyncConnectionPool[Any]) -> None:
    """The test server (Debian's PostgreSQL 15) has lz4; setup switches every table to it."""
    writer = await started(pool)
    await load(writer, DataType.RELEASES, sample(DataType.RELEASES))
    for data_type in ALL_TYPES:
        rows = await fetch(
            pool,
            psql.SQL(
                "SELECT attcompression FROM pg_attribute WHERE attrelid = {}::regclass"
                " AND attname = 'data'"
            ).format(psql.Literal(data_type.value)),
        )
        assert rows == [("l",)]
    methods = await fetch(
        pool,
        psql.SQL(
            "SELECT DISTINCT pg_column_compression(data) FROM releases"
            " WHERE pg_column_compression(data) IS NOT NULL"
        ),
    )
    assert methods == [("lz4",)]
    await started(pool)  # a second setup finds lz4 set and changes nothing


async def test_rebuild_with_a_single_spare_connection_builds_every_index(pg_dsn: str) -> None:
    small: AsyncConnectionPool[Any] = AsyncConnectionPool(
        pg_dsn, min_size=1, max_size=2, open=False, kwargs={"autocommit": False}
    )
    async with small:
        writer = await started(small, bulk_load="true")
        await load(writer, DataType.RELEASES, sample(DataType.RELEASES))
        assert await secondary_indexes(small, DataType.RELEASES) == set()
        await writer.file_complete(file_complete(DataType.RELEASES))
        assert await secondary_indexes(small, DataType.RELEASES) == all_indexes(DataType.RELEASES)
        assert not await writer.indexes_dropped(DataType.RELEASES)


async def test_merge_probes_the_primary_key_even_with_fresh_statistics(
    pool: AsyncConnectionPool[Any],
) -> None:
    """An unchanged batch must cost one key probe per record, never a scan of the table."""
    writer = await started(pool)
    await load(writer, DataType.RELEASES, sample(DataType.RELEASES))
    await writer.file_complete(file_complete(DataType.RELEASES))  # rebuild + ANALYZE
    spec = sql.SPECS[DataType.RELEASES]
    async with pool.connection() as conn, conn.transaction(force_rollback=True):
        cur = conn.cursor()
        await cur.execute(sql.create_stage(spec))
        async with cur.copy(sql.copy_stage(spec)) as copy:
            copy.set_types(spec.copy_types)
            for row in copy_rows.build_rows(spec, sample(DataType.RELEASES)):
                await copy.write_row(row)
        await cur.execute(psql.SQL("EXPLAIN ") + sql.merge(spec))
        plan = "\n".join(row[0] for row in await cur.fetchall())
    assert "Index Scan using releases_pkey on releases o" in plan, plan
    assert "Seq Scan on releases" not in plan, plan


# Every secondary index with a query it serves (the examples of docs/postgres.md).
INDEX_QUERIES = [
    ("artists_name_idx", "SELECT data_id FROM artists WHERE data->>'name' = 'Persuader, The'"),
    (
        "artists_name_lower_idx",
        "SELECT data_id FROM artists WHERE lower(data->>'name') LIKE 'pers%'",
    ),
    ("labels_name_idx", "SELECT data_id FROM labels WHERE data->>'name' = 'Svek'"),
    ("labels_name_lower_idx", "SELECT data_id FROM labels WHERE lower(data->>'name') = 'svek'"),
    ("masters_title_idx", "SELECT data_id FROM masters WHERE data->>'title' = 'Stockholm'"),
    (
        "masters_title_lower_idx",
        "SELECT data_id FROM masters WHERE lower(data->>'title') LIKE 'stock%'",
    ),
    ("masters_year_idx", "SELECT data_id FROM masters WHERE year BETWEEN 1990 AND 1999"),
    ("masters_genres_gin_idx", "SELECT data_id FROM masters WHERE data->'genres' @> '[\"Jazz\"]'"),
    (
        "masters_styles_gin_idx",
        "SELECT data_id FROM masters WHERE data->'styles' @> '[\"Techno\"]'",
    ),
    ("releases_title_idx", "SELECT data_id FROM releases WHERE data->>'title' = 'Stockholm'"),
    (
        "releases_title_lower_idx",
        "SELECT data_id FROM releases WHERE lower(data->>'title') LIKE 'stock%'",
    ),
    ("releases_year_idx", "SELECT data_id FROM releases WHERE year = 1999"),
    ("releases_country_idx", "SELECT data_id FROM releases WHERE data->>'country' = 'Sweden'"),
    ("releases_master_id_idx", "SELECT data_id FROM releases WHERE data->>'master_id' = '5427'"),
    (
        "releases_genres_gin_idx",
        "SELECT data_id FROM releases WHERE data->'genres' @> '[\"Electronic\"]'",
    ),
    (
        "releases_styles_gin_idx",
        "SELECT data_id FROM releases WHERE data->'styles' @> '[\"Techno\", \"House\"]'",
    ),
    (
        "releases_labels_gin_idx",
        "SELECT data_id FROM releases WHERE data->'labels' @> '[{\"name\": \"Svek\"}]'",
    ),
]


def test_every_index_has_an_example_query() -> None:
    assert {name for name, _ in INDEX_QUERIES} == set().union(*map(all_indexes, ALL_TYPES))


async def test_example_queries_use_their_index(pool: AsyncConnectionPool[Any]) -> None:
    await started(pool, bulk_load="false")
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")
        for name, query in INDEX_QUERIES:
            cur = await conn.execute(psql.SQL("EXPLAIN ") + psql.SQL(query))
            plan = "\n".join(row[0] for row in await cur.fetchall())
            assert name in plan, f"{query} does not use {name}:\n{plan}"
