"""Monthly updates on the real server: seen stamps, the guarded purge, crash, stale writes."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql as psql
from psycopg_pool import AsyncConnectionPool
from structlog.testing import capture_logs

from common.messages import ExtractionComplete, FileComplete
from common.normalise import normalise
from common.records import DataType, Record
from common.sink import TransientWriteError
from extractor.xmlparse import DumpFile, iter_records
from tableinator import sql
from tableinator.writer import PostgresWriter
from tests.integration.test_tableinator_writer import fetch, wait_for_lock_waiter

pytestmark = pytest.mark.integration

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"
JAN, FEB = "20260101", "20260201"
RELEASES = DataType.RELEASES


@functools.cache
def sample(data_type: DataType) -> tuple[Record, ...]:
    path = SAMPLES / f"discogs_20200806_{data_type.value}.xml.gz"
    return tuple(iter_records(DumpFile.from_path(path)))


def stamped(records: Sequence[Record], version: str | None) -> list[Record]:
    return [replace(record, version=version) for record in records]


def version_b(*, drop: int = 10, change: int = 10, add: int = 10) -> list[Record]:
    """The sample releases as next month's dump: the first ``drop`` gone, the next
    ``change`` retitled, ``add`` new ids; all stamped FEB."""
    base = sample(RELEASES)
    kept = list(base[drop:])
    for i in range(change):
        old = kept[i]
        kept[i] = normalise(RELEASES, {**old.data, "title": f"{old.data.get('title')} (remaster)"})
    for i in range(add):
        template = base[i]
        kept.append(normalise(RELEASES, {**template.data, "id": str(900_000_000 + i)}))
    return stamped(kept, FEB)


@pytest.fixture
async def pool(pg_dsn: str) -> AsyncIterator[AsyncConnectionPool[Any]]:
    async with new_pool(pg_dsn) as p:
        yield p


def new_pool(dsn: str) -> AsyncConnectionPool[Any]:
    return AsyncConnectionPool(dsn, open=False, min_size=1, max_size=4, timeout=10)


async def started(pool: AsyncConnectionPool[Any], **options: Any) -> PostgresWriter:
    writer = PostgresWriter(pool=pool, **options)
    await writer.setup()
    return writer


async def load(
    writer: PostgresWriter, records: Sequence[Record], data_type: DataType = RELEASES
) -> tuple[int, int, int]:
    """(written, unchanged, added) over batches of 300."""
    totals = [0, 0, 0]
    for start in range(0, len(records), 300):
        result = await writer.write(data_type, records[start : start + 300])
        for i, n in enumerate((result.written, result.unchanged, result.added)):
            totals[i] += n
    return totals[0], totals[1], totals[2]


async def complete(
    writer: PostgresWriter,
    version: str | None,
    *,
    file_complete: bool = True,
    dead_letters: int = 0,
    data_type: DataType = RELEASES,
) -> int:
    if file_complete:
        name = f"discogs_{version}_{data_type.value}.xml.gz"
        await writer.file_complete(FileComplete(data_type, name, None, version))
    message = ExtractionComplete(version, {})
    return await writer.extraction_complete(data_type, message, dead_letters=dead_letters)


async def rows_of(
    pool: AsyncConnectionPool[Any], data_type: DataType
) -> dict[str, tuple[Any, ...]]:
    """data_id -> (hash, data, version, xmin, ctid, updated_at)."""
    query = psql.SQL(
        "SELECT data_id, hash, data, version, xmin::text, ctid::text, updated_at FROM {}"
    ).format(psql.Identifier(data_type.value))
    return {row[0]: row[1:] for row in await fetch(pool, query)}


async def seen_of(pool: AsyncConnectionPool[Any], data_type: DataType) -> dict[str, str]:
    query = psql.SQL("SELECT data_id, version FROM {}").format(
        psql.Identifier(f"{data_type.value}_seen")
    )
    return {row[0]: row[1] for row in await fetch(pool, query)}


async def loaded_jan(pool: AsyncConnectionPool[Any], **options: Any) -> PostgresWriter:
    """A writer over a database holding January: all sample releases and artists."""
    writer = await started(pool, **options)
    assert await load(writer, stamped(sample(RELEASES), JAN)) == (1000, 0, 1000)
    assert await complete(writer, JAN) == 0  # nothing stored that January lacks
    await load(writer, stamped(sample(DataType.ARTISTS), JAN), DataType.ARTISTS)
    return writer


def assert_equals_version(rows: dict[str, tuple[Any, ...]], records: Sequence[Record]) -> None:
    assert {k: v[:2] for k, v in rows.items()} == {r.id: (r.stored_hash, r.data) for r in records}


async def test_update_leaves_exactly_the_new_version_and_rewrites_only_changes(
    pool: AsyncConnectionPool[Any],
) -> None:
    writer = await loaded_jan(pool)
    before = await rows_of(pool, RELEASES)
    artists_before = await rows_of(pool, DataType.ARTISTS)
    feb = version_b()

    assert await load(writer, feb) == (20, 980, 10)  # 10 changed + 10 added written
    with capture_logs() as logs:
        assert await complete(writer, FEB) == 10

    after = await rows_of(pool, RELEASES)
    assert_equals_version(after, feb)
    unchanged = {r.id for r in feb[10:990]}
    assert len(unchanged) == 980
    for data_id in unchanged:  # same xmin, ctid and updated_at: the document was not rewritten
        assert after[data_id] == before[data_id]
    for record in feb[:10] + feb[990:]:  # changed and added rows carry February
        assert after[record.id][2] == FEB
    assert await seen_of(pool, RELEASES) == dict.fromkeys(after, FEB)
    assert await rows_of(pool, DataType.ARTISTS) == artists_before  # other types untouched
    [done] = [e for e in logs if e["event"] == "purge done"]
    assert (done["data_type"], done["version"], done["deleted"]) == ("releases", FEB, 10)

    assert await complete(writer, FEB) == 0  # a redelivered completion is a no-op
    assert await rows_of(pool, RELEASES) == after


@pytest.mark.parametrize(
    ("feb", "completion", "reason"),
    [
        (version_b, {"file_complete": False}, "no file_complete arrived for version 20260201"),
        (version_b, {"dead_letters": 3}, "3 dead-lettered messages"),
        (functools.partial(version_b, drop=150), {}, "150 of 1010 stored records would be deleted"),
        (version_b, {"version": None}, "names no dump version"),
        (lambda: stamped(version_b(), None), {}, "no stored record is stamped with 20260201"),
    ],
    ids=["no-file-complete", "dead-letters", "veto", "no-version", "unversioned-records"],
)
async def test_each_guard_blocks_the_purge_and_says_why(
    pool: AsyncConnectionPool[Any],
    feb: Callable[[], list[Record]],
    completion: dict[str, Any],
    reason: str,
) -> None:
    writer = await loaded_jan(pool)
    records = feb()
    await load(writer, records)
    stored = await rows_of(pool, RELEASES)
    version = completion.pop("version", FEB)
    with capture_logs() as logs:
        assert await complete(writer, version, **completion) == 0
    assert await rows_of(pool, RELEASES) == stored  # nothing deleted
    assert len(stored) > len(records)
    [skipped] = [e for e in logs if e["event"] == "purge skipped"]
    assert skipped["data_type"] == "releases"
    assert skipped["log_level"] == "warning"
    assert reason in skipped["reason"]


async def test_veto_fraction_is_configurable(pool: AsyncConnectionPool[Any]) -> None:
    writer = await loaded_jan(pool, purge_veto_fraction=0.2)
    feb = version_b(drop=150)
    await load(writer, feb)
    assert await complete(writer, FEB) == 150
    assert_equals_version(await rows_of(pool, RELEASES), feb)


async def test_crash_mid_purge_then_restart_finishes_it(
    pool: AsyncConnectionPool[Any], pg_dsn: str
) -> None:
    span = 20  # ids examined per purge transaction
    writer = await loaded_jan(pool, purge_chunk_size=span)
    feb = version_b(drop=50)
    await load(writer, feb)
    await writer.file_complete(FileComplete(RELEASES, "discogs_20260201_releases", None, FEB))
    stored = sorted(r.id for r in sample(RELEASES)) + sorted(r.id for r in feb[990:])
    stored.sort()  # the purge walks the ids in this order, ``span`` at a time
    doomed = sorted(r.id for r in sample(RELEASES)[:50])
    held = doomed[30]
    committed = [d for d in doomed if stored.index(d) < stored.index(held) // span * span]
    assert 0 < len(committed) < 30  # earlier spans delete some; the held span waits
    admin = await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True)
    async with admin, admin.transaction():  # a row lock the purge's DELETE must wait for
        await admin.execute("SELECT 1 FROM releases WHERE data_id = %s FOR UPDATE", (held,))
        purge = asyncio.create_task(
            writer.extraction_complete(RELEASES, ExtractionComplete(FEB, {}), dead_letters=0)
        )
        pid = await wait_for_lock_waiter(admin, time.monotonic() + 10)
        cur = await admin.execute("SELECT count(*) FROM releases")
        assert await cur.fetchone() == (1010 - len(committed),)  # the earlier spans committed
        await admin.execute("SELECT pg_terminate_backend(%s)", (pid,))  # the crash
        with pytest.raises(TransientWriteError):
            await purge
    async with new_pool(pg_dsn) as restarted:  # a new process: only the database is kept
        again = await started(restarted)
        message = ExtractionComplete(FEB, {})  # the redelivered, unacknowledged completion
        deleted = await again.extraction_complete(RELEASES, message, dead_letters=0)
        assert deleted == 50 - len(committed)
        assert_equals_version(await rows_of(restarted, RELEASES), feb)
        assert set(await seen_of(restarted, RELEASES)) == {r.id for r in feb}


async def test_stale_write_of_an_older_version_never_replaces_a_newer_row(
    pool: AsyncConnectionPool[Any],
) -> None:
    writer = await started(pool)
    jan = normalise(RELEASES, {"id": "5", "title": "January"})
    feb = normalise(RELEASES, {"id": "5", "title": "February"})
    await writer.write(RELEASES, [replace(feb, version=FEB)])
    before = await rows_of(pool, RELEASES)

    result = await writer.write(RELEASES, [replace(jan, version=JAN)])  # late redelivery
    assert (result.written, result.unchanged, result.added) == (0, 1, 0)
    assert await rows_of(pool, RELEASES) == before
    assert await seen_of(pool, RELEASES) == {"5": FEB}  # the stamp never goes back

    unknown = await writer.write(RELEASES, [jan])  # no version: the hash decides, as before
    assert (unknown.written, unknown.added) == (1, 0)
    march = normalise(RELEASES, {"id": "5", "title": "March"})
    assert (await writer.write(RELEASES, [replace(march, version="20260301")])).written == 1
    assert (await rows_of(pool, RELEASES))["5"][1:3] == (march.data, "20260301")


async def test_setup_adds_the_version_columns_to_an_older_schema(
    pool: AsyncConnectionPool[Any],
) -> None:
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(
            "CREATE TABLE releases (data_id text PRIMARY KEY, hash text NOT NULL,"
            " data jsonb NOT NULL, year integer, updated_at timestamptz NOT NULL DEFAULT now())"
        )
        await conn.execute(
            "CREATE TABLE tableinator_state (data_type text PRIMARY KEY,"
            " indexes_dropped boolean NOT NULL DEFAULT false,"
            " updated_at timestamptz NOT NULL DEFAULT now())"
        )
        await conn.execute(
            "INSERT INTO releases (data_id, hash, data) VALUES ('999999999', 'h', '{}')"
        )
    writer = await started(pool, purge_veto_fraction=0.5)
    records = stamped(sample(RELEASES)[:5], FEB)
    assert await load(writer, records) == (5, 0, 5)
    assert await complete(writer, FEB) == 1  # the row from before had no stamp
    assert_equals_version(await rows_of(pool, RELEASES), records)


async def test_a_purge_waits_for_another_replicas_write_in_flight(
    pool: AsyncConnectionPool[Any], pg_dsn: str
) -> None:
    writer = await loaded_jan(pool)
    feb = stamped(sample(RELEASES), FEB)  # nothing changed: every write finds its row unchanged
    x = feb[500]
    await load(writer, [r for r in feb if r.id != x.id])
    await writer.file_complete(FileComplete(RELEASES, "discogs_20260201_releases", None, FEB))
    lock_key = sql.SPECS[RELEASES].purge_lock_key
    admin = await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True)
    async with admin:
        async with admin.transaction():  # another replica's write of x, not committed yet
            await admin.execute(sql.SHARED_LOCK, (lock_key,))
            purge = asyncio.create_task(
                writer.extraction_complete(RELEASES, ExtractionComplete(FEB, {}), dead_letters=0)
            )
            await wait_for_lock_waiter(admin, time.monotonic() + 10)
            await admin.execute(
                "INSERT INTO releases_seen (data_id, version) VALUES (%s, %s)"
                " ON CONFLICT (data_id) DO UPDATE SET version = EXCLUDED.version",
                (x.id, FEB),
            )
        assert await purge == 0  # x was stamped before the purge looked
    assert x.id in await rows_of(pool, RELEASES)


async def test_a_write_during_a_purge_chunk_writes_again_the_row_it_deleted(
    pool: AsyncConnectionPool[Any], pg_dsn: str
) -> None:
    writer = await loaded_jan(pool)
    x = stamped(sample(RELEASES), FEB)[500]
    admin = await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True)
    async with admin:
        async with admin.transaction():  # a purge chunk deleting x (stamped January)
            await admin.execute(sql.ADVISORY_LOCK, (sql.SPECS[RELEASES].purge_lock_key,))
            await admin.execute("DELETE FROM releases WHERE data_id = %s", (x.id,))
            await admin.execute("DELETE FROM releases_seen WHERE data_id = %s", (x.id,))
            write = asyncio.create_task(writer.write(RELEASES, [x]))
            await wait_for_lock_waiter(admin, time.monotonic() + 10)
        result = await write
    assert (result.written, result.added) == (1, 1)  # not "unchanged": the row was gone
    assert (await rows_of(pool, RELEASES))[x.id][:3] == (x.stored_hash, x.data, FEB)
    assert (await seen_of(pool, RELEASES))[x.id] == FEB
