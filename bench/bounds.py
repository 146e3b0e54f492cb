"""What bounds a consumer: each stage of its path measured alone, in the same bench run.

- **writer alone**: the consumer's own writer fed records that are already decoded, with
  the service's batch size and concurrency, no broker; with the CPU the database server
  and the writer's process spent per record.
- **broker intake**: a consumer that receives and acks the same pre-filled messages and
  does nothing else (no decoding), through the consumers' own receiving path
  (common.inbound): the most records/s the broker and that path deliver on this machine,
  with batch messages and with one-record messages.
- **decode**: parsing, normalising and hashing the same message bodies on one core.

Where ours falls short of a target, these say which stage's cost, added up on the
machine's cores, leaves no room for it (docs/performance.md, "What bounds each case").
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import aio_pika
from neo4j import AsyncGraphDatabase
from psycopg_pool import AsyncConnectionPool

from bench import harness, stores
from common.amqp import Names
from common.decoding import decode_projected
from common.inbound import ConsumerLost, Inbound, QueueConsumer
from common.messages import FileComplete
from common.records import DataType, Record
from extractor.envelopes import batch_body, data_body
from graphinator.cypher import SELF_LINKED
from graphinator.writer import Neo4jWriter
from tableinator.rows import slim_record
from tableinator.writer import PostgresWriter

BATCH = 500
CONCURRENT = 2  # the services' default POSTGRES/NEO4J_MAX_CONCURRENT_FLUSHES
_SERVER_PROCESSES = {"tableinator": ("postgres",), "graphinator": ("java",)}


def _cpu_by_name(prefixes: Sequence[str]) -> dict[int, float]:
    """CPU seconds so far of every process whose name starts with one of ``prefixes``."""
    return {p.pid: p.cpu_s for p in harness.processes() if p.name.startswith(tuple(prefixes))}


@contextmanager
def _cpu_meter(prefixes: Sequence[str]) -> Iterator[dict[str, float]]:
    """Server CPU (processes alive at the end) and this process's CPU over the block."""
    before, own = _cpu_by_name(prefixes), time.process_time()
    out: dict[str, float] = {}
    yield out
    after = _cpu_by_name(prefixes)
    out["server_s"] = sum(t - before.get(pid, 0.0) for pid, t in after.items())
    out["client_s"] = time.process_time() - own


async def _write_all(
    write: Callable[[Sequence[Record]], Awaitable[object]],
    records: list[Record],
    *,
    concurrent: int,
) -> None:
    slots = asyncio.Semaphore(concurrent)

    async def one(chunk: Sequence[Record]) -> None:
        async with slots:
            await write(chunk)

    chunks = [records[i : i + BATCH] for i in range(0, len(records), BATCH)]
    await asyncio.gather(*(one(chunk) for chunk in chunks))


async def _postgres_alone(data_type: DataType, records: list[Record], dsn: str) -> dict[str, Any]:
    async with AsyncConnectionPool(dsn, min_size=CONCURRENT + 1, max_size=5, open=False) as pool:
        await pool.wait()
        writer = PostgresWriter(pool=pool, bulk_load="false")  # the service's default
        await writer.setup()
        with _cpu_meter(_SERVER_PROCESSES["tableinator"]) as cpu:
            started = time.perf_counter()
            await _write_all(
                lambda chunk: writer.write(data_type, chunk), records, concurrent=CONCURRENT
            )
            await writer.file_complete(FileComplete(data_type, "bench", len(records), "20260101"))
            seconds = time.perf_counter() - started
    return {"rate": len(records) / seconds, "seconds": seconds, **cpu}


async def _neo4j_alone(data_type: DataType, records: list[Record]) -> dict[str, Any]:
    async with AsyncGraphDatabase.driver(stores.NEO4J_URI, auth=stores.NEO4J_AUTH) as driver:
        writer = Neo4jWriter(driver=driver)
        await writer.setup()
        concurrent = 1 if data_type in SELF_LINKED else CONCURRENT
        with _cpu_meter(_SERVER_PROCESSES["graphinator"]) as cpu:
            started = time.perf_counter()
            await _write_all(
                lambda chunk: writer.write(data_type, chunk), records, concurrent=concurrent
            )
            seconds = time.perf_counter() - started
    return {"rate": len(records) / seconds, "seconds": seconds, **cpu}


def writer_alone(consumer: str, data_type: DataType, records: list[Record]) -> dict[str, Any]:
    """The consumer's writer on decoded records: rate, and CPU µs per record by side."""
    if consumer == "tableinator":
        with stores.fresh_database() as dsn:
            out = asyncio.run(_postgres_alone(data_type, records, dsn))
    else:
        stores.clear_graph()
        try:
            out = asyncio.run(_neo4j_alone(data_type, records))
        finally:
            stores.clear_graph()
    n = len(records)
    return {
        "rate": round(out["rate"], 1),
        "server_us_per_record": round(out["server_s"] / n * 1e6, 1),
        "writer_us_per_record": round(out["client_s"] / n * 1e6, 1),
    }


async def _intake(data_type: DataType, records: list[Record], batch: int | None) -> float:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    names = Names(prefix, "intake")
    await harness.prefill(prefix, "intake", data_type, records, batch=batch)
    messages = (len(records) + batch - 1) // batch if batch else len(records)
    messages += 2  # file_complete, extraction_complete
    connection = await aio_pika.connect_robust(harness.AMQP_URL)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=max(4, 2 * BATCH // (batch or 1)))
        done = asyncio.Event()
        seen = 0
        acks: set[asyncio.Task[None]] = set()
        lost: list[ConsumerLost] = []

        def receive(message: Inbound | ConsumerLost) -> None:
            # The consumers' own receiving path (common.inbound), acking every BATCH.
            nonlocal seen
            if isinstance(message, ConsumerLost):
                lost.append(message)
                done.set()
                return
            seen += 1
            if seen % BATCH == 0 or seen == messages or batch:
                ack = asyncio.ensure_future(message.ack(multiple=True))
                acks.add(ack)
                ack.add_done_callback(acks.discard)
            if seen == messages:
                done.set()

        consumer = QueueConsumer(channel, names.queue(data_type), receive)
        started = time.perf_counter()
        await consumer.start()
        await asyncio.wait_for(done.wait(), timeout=600)
        seconds = time.perf_counter() - started
        if lost:
            raise lost[0]
        await consumer.cancel()
        await asyncio.gather(*acks)
        for t in DataType:
            for name in (names.queue(t), names.dead_letter_queue(t)):
                await channel.queue_delete(name)
            await channel.exchange_delete(names.exchange(t))
        await channel.exchange_delete(names.dead_letter_exchange())
    return len(records) / seconds


def intake(data_type: DataType, records: list[Record]) -> dict[str, float]:
    """Records/s delivered and acked with no work done, batch and one-record messages."""
    return {
        "batch": round(asyncio.run(_intake(data_type, records, BATCH)), 1),
        "single": round(asyncio.run(_intake(data_type, records, None)), 1),
    }


def decode_cost(consumer: str, data_type: DataType, records: list[Record]) -> dict[str, float]:
    """µs of one core per record to decode the bodies ours receives (best of three)."""
    projection = slim_record if consumer == "tableinator" else None
    limit = 1 << 30
    batches = [
        batch_body(data_type, "20260101", records[i : i + BATCH])
        for i in range(0, len(records), BATCH)
    ]
    singles = [data_body("20260101", r) for r in records[: max(len(records) // 4, 1)]]

    def per_record(bodies: list[bytes], count: int) -> float:
        best = float("inf")
        for _ in range(3):
            started = time.process_time()
            for body in bodies:
                decode_projected(data_type, body, limit, projection)
            best = min(best, time.process_time() - started)
        return round(best / count * 1e6, 1)

    return {
        "batch": per_record(batches, len(records)),
        "single": per_record(singles, len(singles)),
    }


def cpu_bound(cores: int, writer: dict[str, float], decode_us: float) -> float:
    """Records/s if the machine's cores did nothing but the server's and the writer's
    work and the decoding, perfectly in parallel: an upper bound for any consumer
    built from these stages (the broker's and the consumer's own costs come on top)."""
    per_record = writer["server_us_per_record"] + writer["writer_us_per_record"] + decode_us
    return round(cores * 1e6 / per_record, 1) if per_record else 0.0
