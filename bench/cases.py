"""One bench case: a fresh store, a pre-filled queue, a consumer run to completion.

Shared by bench.run (ours and the baseline), bench.scenarios (growth, replicas, monthly
updates) and bench.profile.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import aio_pika

from bench import harness, stores
from common.amqp import Names
from common.records import DataType, Record

RESULTS = Path(__file__).resolve().parent / "results"
LOGS = RESULTS / "logs"
PORT = 18500
_BASELINE_PORT = PORT + 20  # one port a type: the baselines of a consumer run together


@contextmanager
def store_for(consumer: str, *, shared: bool = False) -> Iterator[dict[str, str]]:
    """A clean store for one run, as environment variables for the consumer.

    ``shared``: the graph is left as it is (the caller clears it around runs sharing it).
    """
    if consumer == "tableinator":
        with stores.fresh_database() as dsn:
            yield {"POSTGRES_DSN": dsn}
    elif shared:
        yield {}
    else:
        stores.clear_graph()
        try:
            yield {}
        finally:
            stores.clear_graph()


async def delete_queues(prefix: str, service: str) -> None:
    names = Names(prefix, service)
    connection = await aio_pika.connect(harness.AMQP_URL)
    async with connection:
        channel = await connection.channel()
        for t in DataType:
            for queue in (names.queue(t), names.dead_letter_queue(t)):
                await channel.queue_delete(queue)
            await channel.exchange_delete(names.exchange(t))
        await channel.exchange_delete(names.dead_letter_exchange())


def _baseline_env(consumer: str) -> dict[str, str]:
    """The original tuning guide's starting point: prefetch 1, batch 100, flush every 5 s."""
    upper = "POSTGRES" if consumer == "tableinator" else "NEO4J"
    return {
        "AMQP_PREFETCH": "1",
        f"{upper}_BATCH_SIZE": "100",
        f"{upper}_BATCH_FLUSH_INTERVAL": "5",
    }


def run_case(
    consumer: str,
    data_type: DataType,
    records: list[Record],
    *,
    batch: int | None,
    baseline: bool = False,
    limit_s: float = 1800,
    port: int = PORT,
    shared_store: bool = False,
) -> dict[str, Any]:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    mode = "batch" if batch else "single"
    label = f"{consumer}-{data_type.value}-{'baseline' if baseline else mode}-{len(records)}"
    env = {"DISCOGS_EXCHANGE_PREFIX": prefix} | (_baseline_env(consumer) if baseline else {})
    with ExitStack() as stack:
        env |= stack.enter_context(store_for(consumer, shared=shared_store))
        harness.prefill_sync(prefix, consumer, data_type, records, batch=batch)
        try:
            measured = harness.run_consumer(
                harness.service_command(consumer, baseline=baseline),
                env,
                data_type,
                len(records),
                log=LOGS / f"{label}.log",
                port=port,
                limit_s=limit_s,
            )
        finally:
            asyncio.run(delete_queues(prefix, consumer))
    print(
        f"  {label}: {measured.rate:,.0f} records/s ({measured.seconds}s, "
        f"rss {measured.peak_rss_mb} MB)",
        flush=True,
    )
    return {"case": label, "mode": "baseline" if baseline else mode, **asdict(measured)}


def run_baselines(
    consumer: str, cases: dict[DataType, list[Record]], *, limit_s: float
) -> dict[DataType, dict[str, Any]]:
    """The baseline of every type of one consumer, all at once.

    The baseline commits one record per 5 s flush and spends that time waiting, so runs
    side by side do not slow each other; run one after another they were two minutes of
    the bench. Each has its own queues and port; tableinator's its own database, and
    graphinator's share the graph (each type writes its own label), cleared around them.
    """
    shared = consumer == "graphinator"
    if shared:
        stores.clear_graph()
    try:
        with ThreadPoolExecutor(max_workers=len(cases)) as pool:
            futures = {
                data_type: pool.submit(
                    run_case,
                    consumer,
                    data_type,
                    records,
                    batch=None,
                    baseline=True,
                    limit_s=limit_s,
                    port=_BASELINE_PORT + i,
                    shared_store=shared,
                )
                for i, (data_type, records) in enumerate(cases.items())
            }
            return {data_type: future.result() for data_type, future in futures.items()}
    finally:
        if shared:
            stores.clear_graph()


@contextmanager
def timed(into: dict[str, float], part: str) -> Iterator[None]:
    """Adds the wall seconds of the block to ``into[part]``."""
    started = time.monotonic()
    try:
        yield
    finally:
        into[part] = round(into.get(part, 0.0) + time.monotonic() - started, 1)
