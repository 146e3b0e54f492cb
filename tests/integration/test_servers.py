"""First round trips proving each real server answers the way the services use it."""

from __future__ import annotations

import aio_pika
import psycopg
import pytest
from neo4j import AsyncDriver

pytestmark = pytest.mark.integration


async def test_rabbitmq_publish_and_consume(
    amqp_connection: aio_pika.abc.AbstractConnection, exchange_prefix: str
) -> None:
    channel = await amqp_connection.channel()
    exchange = await channel.declare_exchange(
        f"{exchange_prefix}-artists", aio_pika.ExchangeType.FANOUT, durable=True
    )
    queue = await channel.declare_queue(
        f"{exchange_prefix}-q", durable=True, arguments={"x-queue-type": "quorum"}
    )
    await queue.bind(exchange)
    await exchange.publish(aio_pika.Message(b'{"id": "1"}'), routing_key="", mandatory=True)
    async with queue.iterator(timeout=10) as messages:
        async for message in messages:
            assert message.body == b'{"id": "1"}'
            await message.ack()
            break


async def test_postgres_write_and_read(pg_dsn: str) -> None:
    async with await psycopg.AsyncConnection.connect(pg_dsn) as conn:
        await conn.execute("CREATE TABLE t (id text PRIMARY KEY, data jsonb)")
        await conn.execute("INSERT INTO t VALUES (%s, %s::jsonb)", ("1", '{"a": "ü"}'))
        cur = await conn.execute("SELECT data->>'a' FROM t WHERE id = %s", ("1",))
        assert await cur.fetchone() == ("ü",)


async def test_neo4j_write_and_read(neo4j_driver: AsyncDriver) -> None:
    await neo4j_driver.execute_query("CREATE (:Probe {id: $id, name: $name})", id="1", name="x")
    records, _, _ = await neo4j_driver.execute_query(
        "MATCH (p:Probe {id: $id}) RETURN p.name AS name", id="1"
    )
    assert [r["name"] for r in records] == ["x"]
