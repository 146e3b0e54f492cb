"""Delta updates through the real consumers (tableinator and graphinator side by side, on
the real broker, PostgreSQL and Neo4j): version A in full, then B as a delta (records
changed and added, records deleted, one of them still referenced in the graph) leaves
each store equal to a fresh full load of B; a delta over a store holding another version,
or none, is refused whole and dead-lettered with the reason.

The messages are built here as docs/wire-format.md describes them ("Delta updates"), so
these tests do not depend on the extractor. A delta does not touch its unchanged records,
so they keep the version stamp of A (PostgreSQL ``version`` column and seen table, Neo4j
``seen``) where a fresh load stamps B: the comparisons leave those stamps out.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import warnings
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aio_pika
import orjson
import psycopg
import pytest
from neo4j import AsyncDriver
from psycopg import sql as psql

from common.amqp import Names
from common.messages import ExtractionComplete
from common.records import DataType, Record
from common.service import Service
from common.settling import REASON_HEADER
from common.sink import Writer
from extractor.broker import ConfirmingPublisher
from tests import servers
from tests.conftest import clear_graph
from tests.integration.test_graphinator_updates import A, B, stamp, version_b
from tests.integration.test_graphinator_writer import FORWARD, canonical, query, sample
from tests.integration.test_replicas import neo_factory, pg_factory
from tests.support import RecordingWriter, RuntimeSettings, eventually

pytestmark = [pytest.mark.integration, pytest.mark.slow]

C = "20260301"
Made = tuple[Service, Writer]
Factory = Callable[[], contextlib.AbstractAsyncContextManager[Made]]
Messages = list[tuple[DataType, bytes]]


def batch(
    data_type: DataType, version: str, records: Sequence[Record], base: str | None = None
) -> bytes:
    wire = [{**r.data, "sha256": r.sha256} for r in records]
    body: dict[str, Any] = {"type": "batch", "data_type": data_type.value, "version": version}
    if base is not None:
        body["base_version"] = base
    return orjson.dumps({**body, "records": wire})


def deletion(data_type: DataType, version: str, base: str, ids: Sequence[str]) -> bytes:
    return orjson.dumps(
        {
            "type": "delete",
            "data_type": data_type.value,
            "version": version,
            "base_version": base,
            "ids": list(ids),
        }
    )


def file_complete(data_type: DataType, version: str, total: int, **delta: Any) -> bytes:
    return orjson.dumps(
        {
            "type": "file_complete",
            "data_type": data_type.value,
            "file": f"discogs_{version}_{data_type.value}.xml.gz",
            "version": version,
            "total_processed": total,
            **delta,
        }
    )


def extraction_complete(version: str, bases: dict[str, str] | None = None) -> bytes:
    body: dict[str, Any] = {"type": "extraction_complete", "version": version}
    if bases:
        body["base_versions"] = bases
    return orjson.dumps(body)


async def publish(prefix: str, bodies: Sequence[tuple[DataType, bytes]]) -> None:
    async with ConfirmingPublisher(servers.AMQP_URL, prefix) as publisher:
        for data_type, body in bodies:
            await publisher.publish(data_type, body)
        await publisher.flush()


def full(version: str, dump: dict[DataType, list[Record]]) -> list[tuple[DataType, bytes]]:
    """A full publish of ``dump`` (batches of 100), then the completions."""
    out = []
    for t, records in dump.items():
        out += [(t, batch(t, version, records[i : i + 100])) for i in range(0, len(records), 100)]
        out.append((t, file_complete(t, version, len(records))))
    return out + [(t, extraction_complete(version)) for t in dump]


def delta(
    version: str, base: str, old: dict[DataType, list[Record]], new: dict[DataType, list[Record]]
) -> list[tuple[DataType, bytes]]:
    """The delta from ``old`` to ``new``: changed and added records in batches of 7, the
    deleted ids in messages of 4, then the completions naming every type's base."""
    out = []
    for t, records in new.items():
        before = {r.id: r.sha256 for r in old[t]}
        sent = [r for r in records if before.get(r.id) != r.sha256]
        gone = sorted(set(before) - {r.id for r in records})
        out += [(t, batch(t, version, sent[i : i + 7], base)) for i in range(0, len(sent), 7)]
        out += [(t, deletion(t, version, base, gone[i : i + 4])) for i in range(0, len(gone), 4)]
        added = sum(r.id not in before for r in sent)
        counts = {
            "added": added,
            "changed": len(sent) - added,
            "unchanged": len(records) - len(sent),
            "deleted": len(gone),
        }
        out.append((t, file_complete(t, version, len(sent), base_version=base, counts=counts)))
    bases = {t.value: base for t in new}
    return out + [(t, extraction_complete(version, bases)) for t in new]


@dataclass
class Consumers:
    made: list[Made]
    tasks: list[asyncio.Task[int]]

    async def crash(self) -> None:
        """Kill every service at once: its connection drops, nothing more is acked."""
        for task in self.tasks:  # a cancelled service closes its connection on the way out
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # A killed process takes its per-queue tasks with it; here they outlive the
        # cancelled service task unless cancelled too.
        queues = [t for t in asyncio.all_tasks() if t.get_name().startswith("consume-")]
        for queue in queues:
            queue.cancel()
        await asyncio.gather(*queues, return_exceptions=True)


def collect_abandoned_sockets() -> None:
    """A killed process's sockets close with it; the ones abandoned by a crash simulated
    in this process are collected here (their ResourceWarning is the simulation's, not a
    leak of the services), not in whichever later test the collector happens to run."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


@contextlib.asynccontextmanager
async def running(*factories: Factory) -> AsyncIterator[Consumers]:
    """The services of ``factories``, consuming until the block ends; each exits with 0
    (unless crashed)."""
    stop = asyncio.Event()
    async with contextlib.AsyncExitStack() as stack:
        made = [await stack.enter_async_context(make()) for make in factories]
        tasks = [asyncio.create_task(service.run(stop)) for service, _ in made]
        try:
            await eventually(lambda: all(s.status()[0] for s, _ in made), what="consuming")
            yield Consumers(made, tasks)
        finally:
            stop.set()
            codes = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(code == 0 or isinstance(code, asyncio.CancelledError) for code in codes)


async def completed(made: list[Made], version: str, types: Sequence[DataType]) -> None:
    """Until every service has handled ``version``'s extraction_complete of ``types``."""
    await eventually(
        lambda: all(
            s.metrics.types[t].extraction_complete == version for s, _ in made for t in types
        ),
        within=300,
        what=f"extraction_complete {version}",
    )


async def rows(dsn: str) -> dict[str, dict[str, tuple[Any, ...]]]:
    """Per type, data_id -> (hash, data), and the ids of the seen table."""
    out = {}
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        for t in DataType:
            table = psql.Identifier(t.value)
            cur = await conn.execute(psql.SQL("SELECT data_id, hash, data FROM {}").format(table))
            out[t.value] = {
                r[0]: (r[1], orjson.dumps(r[2], option=orjson.OPT_SORT_KEYS))
                for r in await cur.fetchall()
            }
            seen = psql.Identifier(f"{t.value}_seen")
            cur = await conn.execute(psql.SQL("SELECT data_id FROM {}").format(seen))
            out[f"{t.value}_seen"] = {r[0]: () for r in await cur.fetchall()}
    return out


async def graph(driver: AsyncDriver) -> list[bytes]:
    """The canonical dump of the graph, without the ``seen`` version stamps."""
    out = []
    for item in await canonical(driver):
        entry = orjson.loads(item)
        entry["props"].pop("seen", None)
        out.append(orjson.dumps(entry, option=orjson.OPT_SORT_KEYS))
    return sorted(out)


async def held(made: list[Made], types: Sequence[DataType]) -> list[str | None]:
    return [await writer.held_version(t) for _, writer in made for t in types]


async def dead_letter_reasons(prefix: str, service: str, data_type: DataType, n: int) -> list[str]:
    """The reasons of the first ``n`` dead letters of the type (taken off the queue)."""
    queue = Names(prefix, service).dead_letter_queue(data_type)
    reasons: list[str] = []
    async with await aio_pika.connect(servers.AMQP_URL) as connection:
        channel = await connection.channel()
        dlq = await channel.declare_queue(queue, passive=True)
        async with dlq.iterator(timeout=30) as messages:
            async for message in messages:
                reasons.append(str((message.headers or {})[REASON_HEADER]))
                await message.ack()
                if len(reasons) == n:
                    break
    return reasons


async def crashed_mid_delta(consumers: Consumers, prefix: str, messages: Messages) -> Messages:
    """Publish the delta but its extraction_complete messages, kill both services once the
    first type's records are in, and return what is left to publish."""
    rest = [(t, body) for t, body in messages if b'"extraction_complete"' in body]
    await publish(prefix, [m for m in messages if m not in rest])
    await eventually(
        lambda: all(s.metrics.types[FORWARD[0]].written > 1000 for s, _ in consumers.made),
        within=60,
        what="the first type's delta written",
    )
    await consumers.crash()
    return rest


@pytest.mark.parametrize("crash", [False, True], ids=["straight", "killed-mid-delta"])
async def test_a_delta_leaves_each_store_equal_to_a_fresh_load_of_its_version(
    pg_dsn: str, second_pg_dsn: str, neo4j_driver: AsyncDriver, exchange_prefix: str, crash: bool
) -> None:
    dump_a = {t: stamp(sample(t), A) for t in FORWARD}
    dump_b, special = version_b()  # per type 10 removed, 10 changed, 10 added
    first = f"{exchange_prefix}-delta"
    factories = (pg_factory(pg_dsn, first), neo_factory(first))
    messages = delta(B, A, dump_a, dump_b)
    async with running(*factories) as consumers:
        await publish(first, full(A, dump_a))
        await completed(consumers.made, A, FORWARD)
        assert await held(consumers.made, FORWARD) == [A] * 8
        if crash:
            messages = await crashed_mid_delta(consumers, first, messages)
    async with running(*factories) as consumers:
        await publish(first, messages)
        await completed(consumers.made, B, FORWARD)
        assert await held(consumers.made, FORWARD) == [B] * 8
        # Each extraction_complete again, as the broker redelivers one whose ack was lost
        # with the connection: the stores keep holding B.
        again = ExtractionComplete(B, {}, {t.value: A for t in FORWARD})
        for _, writer in consumers.made:
            for t in FORWARD:
                await writer.extraction_complete(t, again, dead_letters=0)
        assert await held(consumers.made, FORWARD) == [B] * 8
        for service, _ in consumers.made:
            for t in FORWARD:
                stats = service.metrics.types[t]
                assert stats.dead_lettered == 0, (service.name, t)
                if not crash:
                    assert stats.written == 20, (service.name, t)  # 10 changed, 10 added
    by_delta, graph_by_delta = await rows(pg_dsn), await graph(neo4j_driver)
    label = await query(
        neo4j_driver,
        "MATCH (l:Label {id: $id}) RETURN properties(l) AS p, EXISTS { (l)<-[:ON]-() } AS used",
        id=special["label"],
    )
    assert label[0]["used"]  # deleted, still referenced: a placeholder again
    assert label[0]["p"]["placeholder"] is True
    assert set(label[0]["p"]) <= {"id", "name", "placeholder"}

    await clear_graph(neo4j_driver)
    second = f"{exchange_prefix}-fresh"
    async with running(pg_factory(second_pg_dsn, second), neo_factory(second)) as consumers:
        await publish(second, full(B, dump_b))
        await completed(consumers.made, B, FORWARD)
    fresh, graph_fresh = await rows(second_pg_dsn), await graph(neo4j_driver)
    if crash:
        collect_abandoned_sockets()
    assert {t: len(v) for t, v in by_delta.items()} == {t: len(v) for t, v in fresh.items()}
    assert by_delta == fresh
    assert set(graph_by_delta) ^ set(graph_fresh) == set()
    assert graph_by_delta == graph_fresh


LABELS = DataType.LABELS


async def label_state(dsn: str, driver: AsyncDriver) -> tuple[Any, list[bytes]]:
    return (await rows(dsn))[LABELS.value], await graph(driver)


async def test_a_delta_over_another_version_or_none_is_refused_whole(
    pg_dsn: str, neo4j_driver: AsyncDriver, exchange_prefix: str
) -> None:
    some = stamp(sample(LABELS), A)[:30]
    newer = stamp(some[5:20], B)

    def refused(base: str) -> list[tuple[DataType, bytes]]:
        one = {**newer[0].data, "sha256": "x", "version": B, "base_version": base}
        return [
            (LABELS, batch(LABELS, B, newer, base)),
            (LABELS, orjson.dumps(one)),  # a one-record data message of a delta
            (LABELS, deletion(LABELS, B, base, [r.id for r in some[:5]])),
        ]

    services = ("tableinator", "graphinator")
    factories = (pg_factory(pg_dsn, exchange_prefix), neo_factory(exchange_prefix))
    async with running(*factories) as consumers:
        made = consumers.made
        await publish(exchange_prefix, refused(A))
        await eventually(
            lambda: all(s.metrics.types[LABELS].dead_lettered == 3 for s, _ in made),
            within=60,
            what="refused",
        )
        assert await label_state(pg_dsn, neo4j_driver) == ({}, [])
        for service in services:
            reasons = await dead_letter_reasons(exchange_prefix, service, LABELS, 3)
            assert reasons == [f"store holds no version, delta from {A}: publish {B} in full"] * 3

        await publish(exchange_prefix, full(A, {LABELS: some}))
        await completed(made, A, [LABELS])
        assert await held(made, [LABELS]) == [A, A]
        before = await label_state(pg_dsn, neo4j_driver)
        await publish(exchange_prefix, refused(C))
        await eventually(
            lambda: all(s.metrics.types[LABELS].dead_lettered == 6 for s, _ in made),
            within=60,
            what="refused over another version",
        )
        assert await label_state(pg_dsn, neo4j_driver) == before
        for service in services:
            reasons = await dead_letter_reasons(exchange_prefix, service, LABELS, 3)
            assert reasons == [f"store holds {A}, delta from {C}: publish {B} in full"] * 3


async def test_a_delete_waits_for_the_records_before_it_and_a_refusal_applies_nothing(
    exchange_prefix: str,
) -> None:
    """The runtime alone (a recording writer holding A): records buffered before a delete
    message are committed before it; a delta from another base is dead-lettered whole."""
    masters = DataType.MASTERS
    writer = RecordingWriter(held={masters: A})
    settings = RuntimeSettings(
        amqp_url=servers.AMQP_URL,
        discogs_exchange_prefix=exchange_prefix,
        health_port=0,
        batch_size=100,
        flush_interval=3600.0,  # nothing is written until the delete drains the buffer
    )
    records = stamp(sample(masters)[:5], B)
    bodies = [
        (masters, batch(masters, B, records, A)),
        (masters, deletion(masters, B, A, [records[2].id, "999999999"])),
        (masters, batch(masters, B, stamp(sample(masters)[5:8], B), C)),
    ]
    service = Service(name="testsvc", settings=settings, writer=writer)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        await eventually(lambda: service.status()[0], what="consuming")
        await publish(exchange_prefix, bodies)
        await eventually(lambda: service.metrics.types[masters].dead_lettered == 1)
    finally:
        stop.set()
        assert await asyncio.wait_for(task, timeout=30) == 0
    assert writer.events == [
        ("write", masters, [r.id for r in records]),
        ("delete", masters, [records[2].id, "999999999"]),
    ]
    assert sorted(writer.written[masters]) == sorted(r.id for i, r in enumerate(records) if i != 2)
    reasons = await dead_letter_reasons(exchange_prefix, "testsvc", masters, 1)
    assert reasons == [f"store holds {A}, delta from {C}: publish {B} in full"]
