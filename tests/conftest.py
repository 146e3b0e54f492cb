"""Fixtures giving each test isolated real resources on the servers of `make services`.

- ``pg_dsn``: a throwaway PostgreSQL database, dropped after the test.
- ``neo4j_driver``: an async driver on an emptied graph (Community has one database, so
  Neo4j tests clean it first; they are not run in parallel).
- ``amqp_connection`` / ``exchange_prefix``: a broker connection and a unique exchange
  prefix, whose exchanges and queues are deleted after the test.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import aio_pika
import psycopg
import pytest
from neo4j import AsyncDriver, AsyncGraphDatabase
from neo4j.exceptions import Neo4jError, ServiceUnavailable
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tests import servers


@pytest.fixture
async def pg_dsn() -> AsyncIterator[str]:
    async with _throwaway_database() as dsn:
        yield dsn


@pytest.fixture
async def second_pg_dsn() -> AsyncIterator[str]:
    """Another throwaway database, for tests comparing two loads side by side."""
    async with _throwaway_database() as dsn:
        yield dsn


@contextlib.asynccontextmanager
async def _throwaway_database() -> AsyncIterator[str]:
    name = f"test_{uuid.uuid4().hex[:12]}"
    try:
        admin = await psycopg.AsyncConnection.connect(servers.POSTGRES_ADMIN_DSN, autocommit=True)
    except psycopg.OperationalError as e:
        pytest.fail(servers.missing("PostgreSQL", e))
    async with admin:
        await admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            params = conninfo_to_dict(servers.POSTGRES_ADMIN_DSN)
            params["dbname"] = name
            yield make_conninfo(**params)  # type: ignore[arg-type]
        finally:
            await admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
async def neo4j_driver() -> AsyncIterator[AsyncDriver]:
    driver = AsyncGraphDatabase.driver(servers.NEO4J_URI, auth=servers.NEO4J_AUTH)
    try:
        await driver.verify_connectivity()
    except (ServiceUnavailable, OSError, Neo4jError) as e:
        await driver.close()
        pytest.fail(servers.missing("Neo4j", e))
    async with driver:
        await clear_graph(driver)
        yield driver


async def clear_graph(driver: AsyncDriver) -> None:
    """Delete every node, relationship, constraint and index (in chunks: no huge tx)."""
    async with driver.session() as session:  # CALL IN TRANSACTIONS needs an implicit tx
        for statement in (  # edges first: a big Genre node's edges overflow one transaction
            "MATCH ()-[r]->() CALL (r) { DELETE r } IN TRANSACTIONS OF 10000 ROWS",
            "MATCH (n) CALL (n) { DELETE n } IN TRANSACTIONS OF 10000 ROWS",
        ):
            result = await session.run(statement)
            await result.consume()
    records, _, _ = await driver.execute_query("SHOW CONSTRAINTS YIELD name")
    for rec in records:
        await driver.execute_query(f"DROP CONSTRAINT `{rec['name']}` IF EXISTS")
    records, _, _ = await driver.execute_query(
        "SHOW INDEXES YIELD name, type WHERE type <> 'LOOKUP'"
    )
    for rec in records:
        await driver.execute_query(f"DROP INDEX `{rec['name']}` IF EXISTS")


@pytest.fixture
async def amqp_connection() -> AsyncIterator[aio_pika.abc.AbstractConnection]:
    try:
        connection = await aio_pika.connect(servers.AMQP_URL, timeout=5)
    except (aio_pika.exceptions.AMQPConnectionError, OSError, TimeoutError) as e:
        pytest.fail(servers.missing("RabbitMQ", e))
    async with connection:
        yield connection


@pytest.fixture
async def exchange_prefix(
    amqp_connection: aio_pika.abc.AbstractConnection,
) -> AsyncIterator[str]:
    """A unique exchange prefix; its exchanges and every queue named after it are removed."""
    prefix = f"test-{uuid.uuid4().hex[:10]}"
    yield prefix
    from tests.amqp_admin import delete_named

    await delete_named(prefix)
