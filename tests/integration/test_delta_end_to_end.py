"""Monthly updates end to end (issue 24): the extractor publishes version A of the sample
dump in full with a state folder, then B (derived by ``bench.dumpdelta``: per type 1 %
changed, 0.5 % added, 0.5 % removed) as a delta, through both real consumers on the real
broker, PostgreSQL and Neo4j. Each store then equals a fresh full load of B, row for row
and node for node, edge for edge (the version stamps of unchanged records aside, see
tests/integration/test_delta_updates.py); so it does when both consumers are killed
mid-delta (SIGKILL, as real subprocesses) and restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from neo4j import AsyncDriver

from bench.dumpdelta import Shares, derive
from common.records import DataType
from extractor.publish import PublishOptions, collect_dumps, publish_dumps
from tests import servers
from tests.conftest import clear_graph
from tests.faults.harness import Consumer, consumer_env, dead_letter_depth
from tests.integration.test_delta_updates import completed, graph, held, rows, running
from tests.integration.test_replicas import neo_factory, pg_factory
from tests.support import eventually

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"
A, B = "20200806", "20200906"
TYPES = list(DataType)


@pytest.fixture(scope="module")
def version_b(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("b")
    derive(SAMPLES, dest, B)
    return dest


@pytest.fixture
def b_and_state(version_b: Path, tmp_path: Path) -> tuple[Path, Path]:
    """Version B's folder, and an empty state folder."""
    return version_b, tmp_path / "state"


async def publish(folder: Path, prefix: str, state: Path | None, **options: Any) -> None:
    await publish_dumps(
        collect_dumps([folder]),
        url=servers.AMQP_URL,
        prefix=prefix,
        options=PublishOptions(batch_size=50, state_dir=state, **options),
    )


async def fresh_load(folder: Path, dsn: str, driver: AsyncDriver, prefix: str) -> tuple[Any, Any]:
    """Both stores after a full publish of ``folder`` into empty ones."""
    await clear_graph(driver)
    async with running(pg_factory(dsn, prefix), neo_factory(prefix)) as consumers_now:
        made = consumers_now.made
        await publish(folder, prefix, None)
        await completed(made, B, TYPES)
    return await rows(dsn), await graph(driver)


def same(by_delta: tuple[Any, Any], fresh: tuple[Any, Any]) -> None:
    (pg_delta, graph_delta), (pg_fresh, graph_fresh) = by_delta, fresh
    assert {t: len(v) for t, v in pg_delta.items()} == {t: len(v) for t, v in pg_fresh.items()}
    assert pg_delta == pg_fresh
    assert len(graph_delta) == len(graph_fresh)
    assert set(graph_delta) ^ set(graph_fresh) == set()
    assert graph_delta == graph_fresh


async def test_a_in_full_then_b_as_a_delta_equals_a_fresh_load_of_b(
    pg_dsn: str,
    second_pg_dsn: str,
    neo4j_driver: AsyncDriver,
    exchange_prefix: str,
    b_and_state: tuple[Path, Path],
) -> None:
    version_b, state = b_and_state
    first = f"{exchange_prefix}-delta"
    async with running(pg_factory(pg_dsn, first), neo_factory(first)) as consumers_now:
        made = consumers_now.made
        await publish(SAMPLES, first, state)
        await completed(made, A, TYPES)
        assert await held(made, TYPES) == [A] * 8
        written = {(s.name, t): s.metrics.types[t].written for s, _ in made for t in TYPES}

        await publish(version_b, first, state)

        await completed(made, B, TYPES)
        assert await held(made, TYPES) == [B] * 8
        for service, _ in made:  # only the delta's records were sent: 10 changed, 5 added
            for t in TYPES:
                stats = service.metrics.types[t]
                assert (stats.written - written[service.name, t], stats.dead_lettered) == (15, 0)
    by_delta = await rows(pg_dsn), await graph(neo4j_driver)
    same(by_delta, await fresh_load(version_b, second_pg_dsn, neo4j_driver, f"{first}-fresh"))


@contextlib.asynccontextmanager
async def consumers(prefix: str, dsn: str, logs: Path) -> AsyncIterator[dict[str, Consumer]]:
    """Both consumers as real subprocesses, consuming; stopped at the end."""
    running = {
        name: Consumer(name, consumer_env(name, prefix, dsn=dsn), logs / f"{name}.log")
        for name in ("tableinator", "graphinator")
    }
    try:
        for consumer in running.values():
            consumer.start()
        for consumer in running.values():
            await asyncio.to_thread(consumer.wait_consuming)
        yield running
    finally:
        for consumer in running.values():
            with contextlib.suppress(Exception):
                await asyncio.to_thread(consumer.stop)


async def versions_held(dsn: str, driver: AsyncDriver) -> set[tuple[str, str | None]]:
    """Per store and type, the version it holds (what the consumers read at start)."""
    out: set[tuple[str, str | None]] = set()
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute("SELECT data_type, version FROM store_versions")
        pg = dict(await cur.fetchall())
    records, _, _ = await driver.execute_query(
        "MATCH (v:StoreVersion) RETURN v.data_type AS t, v.version AS v"
    )
    neo = {r["t"]: r["v"] for r in records}
    for t in TYPES:
        out |= {("postgres", pg.get(t.value)), ("neo4j", neo.get(t.value))}
    return out


async def test_consumers_killed_mid_delta_and_restarted_reach_the_same_state(
    pg_dsn: str,
    second_pg_dsn: str,
    neo4j_driver: AsyncDriver,
    exchange_prefix: str,
    tmp_path: Path,
) -> None:
    folder = tmp_path / "b"  # more changed and added, so that there is a middle to kill in
    derive(SAMPLES, folder, B, Shares(0.3, 0.05, 0.005))
    state, prefix = tmp_path / "state", f"{exchange_prefix}-kill"
    async with consumers(prefix, pg_dsn, tmp_path) as running_now:
        await publish(SAMPLES, prefix, state)
        await until_held(pg_dsn, neo4j_driver, A)
        base = {n: await asyncio.to_thread(c.committed) for n, c in running_now.items()}

        publishing = asyncio.ensure_future(publish(folder, prefix, state, single=True))

        killed: set[str] = set()

        async def progressed() -> bool:  # each killed as soon as it applied part of it
            for name, consumer in running_now.items():
                if name not in killed and await asyncio.to_thread(consumer.committed) > base[name]:
                    consumer.kill9()
                    killed.add(name)
            return len(killed) == len(running_now)

        await eventually(progressed, within=120, what="part of the delta applied")
        assert await versions_held(pg_dsn, neo4j_driver) == {("postgres", A), ("neo4j", A)}
        for consumer in running_now.values():
            consumer.start()
        await publishing
        await until_held(pg_dsn, neo4j_driver, B)
    for name in running_now:
        assert await asyncio.to_thread(dead_letter_depth, prefix, name) == 0
    by_delta = await rows(pg_dsn), await graph(neo4j_driver)
    same(by_delta, await fresh_load(folder, second_pg_dsn, neo4j_driver, f"{prefix}-fresh"))


async def until_held(dsn: str, driver: AsyncDriver, version: str) -> None:
    want = {("postgres", version), ("neo4j", version)}

    async def held_now() -> bool:
        return await versions_held(dsn, driver) == want

    await eventually(held_now, within=300, what=f"both stores holding {version}")


async def test_a_placeholder_named_by_a_deleted_record_is_renamed_as_a_fresh_load_names_it(
    pg_dsn: str, second_pg_dsn: str, neo4j_driver: AsyncDriver, exchange_prefix: str, tmp_path: Path
) -> None:
    folder = tmp_path / "b"  # 5 % removed: release 4497815 goes, the only one that spelt
    derive(SAMPLES, folder, B, Shares(0.01, 0.005, 0.05))  # artist 3257076 "...Che Macerie"
    first = f"{exchange_prefix}-names"
    async with running(pg_factory(pg_dsn, first), neo_factory(first)) as consumers_now:
        made = consumers_now.made
        await publish(SAMPLES, first, tmp_path / "state")
        await completed(made, A, TYPES)
        await publish(folder, first, tmp_path / "state")
        await completed(made, B, TYPES)
    by_delta = await rows(pg_dsn), await graph(neo4j_driver)
    same(by_delta, await fresh_load(folder, second_pg_dsn, neo4j_driver, f"{first}-fresh"))
