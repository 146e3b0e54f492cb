"""Two replicas of each consumer on the same queues end exactly where one replica does.

The replicas run in this process, each with its own broker connection, its own pool or
driver and its own writer, competing for the same durable queues as separate containers
would. The data is the four sample files plus a synthetic set built to collide: many
releases sharing a handful of labels, artists, genres and styles.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
from neo4j import AsyncDriver, AsyncGraphDatabase
from psycopg_pool import AsyncConnectionPool

from bench.generate import generate
from common.records import DataType, Record
from common.service import Service
from common.sink import Writer
from extractor.broker import ConfirmingPublisher
from extractor.envelopes import batch_body
from extractor.xmlparse import DumpFile, iter_records
from graphinator.settings import GraphinatorSettings
from graphinator.writer import Neo4jWriter
from tableinator.settings import TableinatorSettings
from tableinator.writer import PostgresWriter
from tests import servers
from tests.conftest import clear_graph
from tests.integration.test_graphinator_writer import canonical
from tests.support import eventually

pytestmark = [pytest.mark.integration, pytest.mark.slow]

VERSION = "20260101"


def dataset() -> dict[DataType, list[Record]]:
    data: dict[DataType, list[Record]] = {}
    for t in DataType:
        path = Path(f"data/samples/discogs_20200806_{t.value}.xml.gz")
        data[t] = [replace(r, version=VERSION) for r in iter_records(DumpFile.from_path(path))]
    # Collide: 600 releases over 5 artist and label ids, with the samples' genres/styles.
    crowd = generate(DataType.RELEASES, 600, seed=7, first_id=50_000_000, id_space=5)
    data[DataType.RELEASES] += [replace(r, version=VERSION) for r in crowd]
    return data


async def publish(prefix: str, data: dict[DataType, list[Record]], per_message: int) -> None:
    async with ConfirmingPublisher(servers.AMQP_URL, prefix) as publisher:
        for t, records in data.items():
            for i in range(0, len(records), per_message):
                chunk = records[i : i + per_message]
                await publisher.publish(t, batch_body(t, VERSION, chunk))
        await publisher.flush()


@dataclass
class Replica:
    service: Service
    task: asyncio.Task[int]


async def run_replicas(
    n: int,
    make: Callable[[], contextlib.AbstractAsyncContextManager[tuple[Service, Writer]]],
    prefix: str,
    data: dict[DataType, list[Record]],
) -> list[Service]:
    stop = asyncio.Event()
    async with contextlib.AsyncExitStack() as stack:
        replicas = []
        for _ in range(n):
            service, _writer = await stack.enter_async_context(make())
            replicas.append(Replica(service, asyncio.create_task(service.run(stop))))
        await eventually(lambda: all(r.service.status()[0] for r in replicas), what="up")
        await publish(prefix, data, per_message=40)
        expected = sum(len(v) for v in data.values())

        def committed() -> int:
            return sum(
                s.written + s.unchanged for r in replicas for s in r.service.metrics.types.values()
            )

        await eventually(lambda: committed() >= expected, within=240, what="all committed")
        stop.set()
        codes = await asyncio.gather(*(r.task for r in replicas))
        assert codes == [0] * n
        return [r.service for r in replicas]


async def rows(dsn: str) -> dict[str, set[tuple[Any, ...]]]:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        out = {}
        for t in DataType:
            cur = await conn.execute(f"SELECT data_id, hash, data FROM {t.value}")
            out[t.value] = {(r[0], r[1], str(r[2])) for r in await cur.fetchall()}
        return out


def pg_factory(dsn: str, prefix: str) -> Callable[[], Any]:
    @contextlib.asynccontextmanager
    async def make() -> AsyncIterator[tuple[Service, Writer]]:
        settings = TableinatorSettings(
            amqp_url=servers.AMQP_URL,
            discogs_exchange_prefix=prefix,
            health_port=0,
            postgres_dsn=dsn,
            postgres_batch_size=100,
            postgres_batch_flush_interval=0.2,
        )
        async with AsyncConnectionPool(dsn, min_size=1, max_size=3, open=False) as pool:
            await pool.open(wait=True, timeout=30)
            writer = PostgresWriter(pool=pool)
            await writer.setup()
            yield Service(name="tableinator", settings=settings, writer=writer), writer

    return make


def neo_factory(prefix: str) -> Callable[[], Any]:
    @contextlib.asynccontextmanager
    async def make() -> AsyncIterator[tuple[Service, Writer]]:
        settings = GraphinatorSettings(
            amqp_url=servers.AMQP_URL,
            discogs_exchange_prefix=prefix,
            health_port=0,
            neo4j_batch_size=100,
            neo4j_batch_flush_interval=0.2,
        )
        async with AsyncGraphDatabase.driver(servers.NEO4J_URI, auth=servers.NEO4J_AUTH) as drv:
            writer = Neo4jWriter(driver=drv)
            await writer.setup()
            yield Service(name="graphinator", settings=settings, writer=writer), writer

    return make


async def test_two_tableinators_store_what_one_does(
    pg_dsn: str, exchange_prefix: str, second_pg_dsn: str
) -> None:
    data = dataset()
    await run_replicas(
        1, pg_factory(pg_dsn, f"{exchange_prefix}-one"), f"{exchange_prefix}-one", data
    )
    services = await run_replicas(
        2, pg_factory(second_pg_dsn, f"{exchange_prefix}-two"), f"{exchange_prefix}-two", data
    )
    assert all(s.metrics.types[DataType.RELEASES].written > 0 for s in services), "one starved"
    single, double = await rows(pg_dsn), await rows(second_pg_dsn)
    assert {t: len(v) for t, v in double.items()} == {t.value: len(data[t]) for t in DataType}
    assert single == double


async def test_two_graphinators_build_the_graph_one_does(
    neo4j_driver: AsyncDriver, exchange_prefix: str
) -> None:
    data = dataset()
    await run_replicas(1, neo_factory(f"{exchange_prefix}-one"), f"{exchange_prefix}-one", data)
    single = await canonical(neo4j_driver)
    await clear_graph(neo4j_driver)
    services = await run_replicas(
        2, neo_factory(f"{exchange_prefix}-two"), f"{exchange_prefix}-two", data
    )
    assert all(s.metrics.types[DataType.RELEASES].written > 0 for s in services), "one starved"
    retries = sum(s.metrics.types[t].retries for s in services for t in DataType)
    double = await canonical(neo4j_driver)
    assert len(double) == len(single)
    assert double == single
    assert retries <= 5, f"{retries} transient retries: a lock-retry storm"
