"""The shared runtime on the real broker: acks, dead letters, redelivery, drain, health."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import urllib.request
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import aio_pika
import orjson
import pytest

from common.amqp import Names
from common.records import DataType
from common.service import Service
from common.settling import REASON_HEADER
from tests import servers
from tests.amqp_admin import close_connections
from tests.integration.test_delta_updates import dead_letter_reasons
from tests.support import RecordingWriter, RuntimeSettings, eventually

pytestmark = pytest.mark.integration


@dataclass
class Running:
    service: Service
    stop: asyncio.Event
    task: asyncio.Task[int]


StartService = Callable[..., "contextlib.AbstractAsyncContextManager[Running]"]


@pytest.fixture
def start_service(exchange_prefix: str) -> StartService:
    @contextlib.asynccontextmanager
    async def start(writer: RecordingWriter, **overrides: object) -> AsyncIterator[Running]:
        defaults: dict[str, object] = {"amqp_url": servers.AMQP_URL, "health_port": 0}
        settings = RuntimeSettings(
            discogs_exchange_prefix=exchange_prefix, **(defaults | overrides)
        )
        service = Service(name="testsvc", settings=settings, writer=writer)
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(stop))
        running = Running(service, stop, task)
        try:
            await eventually(lambda: service.status()[0] or task.done(), what="consuming")
            assert not task.done(), task.result()
            yield running
        finally:
            stop.set()
            if not task.done():
                await asyncio.wait_for(task, timeout=30)

    return start


async def publish(
    connection: aio_pika.abc.AbstractConnection, prefix: str, data_type: DataType, *bodies: bytes
) -> None:
    channel = await connection.channel()
    exchange = await channel.get_exchange(f"{prefix}-{data_type.value}")
    for body in bodies:
        await exchange.publish(aio_pika.Message(body), routing_key="", mandatory=True)
    await channel.close()


async def ready_count(connection: aio_pika.abc.AbstractConnection, queue: str) -> int:
    channel = await connection.channel()
    declared = await channel.declare_queue(queue, passive=True)
    await channel.close()
    return declared.declaration_result.message_count or 0


def artist(i: int, **extra: object) -> bytes:
    return orjson.dumps({"id": str(i), "name": f"Artist {i}", **extra})


async def test_acks_only_after_commit_and_redelivers_after_a_crash(
    start_service: StartService,
    amqp_connection: aio_pika.abc.AbstractConnection,
    exchange_prefix: str,
) -> None:
    held = RecordingWriter()
    held.gate.clear()
    names = Names(exchange_prefix, "testsvc")
    async with start_service(held) as running:
        await publish(
            amqp_connection, exchange_prefix, DataType.ARTISTS, *(artist(i) for i in range(10))
        )
        await eventually(lambda: len(held.started) > 0, what="a write started")
        # Crash: the connection drops (the cancelled service closes it on the way out)
        # while the write is still open; nothing was acked.
        running.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running.task
        running.stop.set()
    assert held.count(DataType.ARTISTS) == 0
    queue = names.queue(DataType.ARTISTS)
    await eventually(lambda: _count_is(amqp_connection, queue, 10), what="requeued")
    fresh = RecordingWriter()
    async with start_service(fresh):
        await eventually(lambda: fresh.count(DataType.ARTISTS) == 10, what="all redelivered")
    assert await ready_count(amqp_connection, queue) == 0


async def _count_is(connection: aio_pika.abc.AbstractConnection, queue: str, n: int) -> bool:
    return await ready_count(connection, queue) == n


POISON = {
    "not UTF-8": b'{"id": "1", "name": "\xff\xfe"}',
    "not JSON": b"{not json",
    "array": b"[1, 2]",
    "number": b"42",
    "no id": b'{"name": "x"}',
    "empty id": b'{"id": "", "name": "x"}',
    "object id": b'{"id": {"a": 1}, "name": "x"}',
    "injection id": b'{"id": "1; DROP TABLE artists", "name": "x"}',
    "unknown type": b'{"type": "mystery", "id": "1"}',
    "deep": b"[" * 10_000 + b"]" * 10_000,
    "wrong field type": b'{"id": "5", "tracklist": "not a list"}',
    "nul": b'{"id": "6", "name": "a\\u0000b"}',
}


async def test_bad_input_is_dead_lettered_with_reason(
    start_service: StartService,
    amqp_connection: aio_pika.abc.AbstractConnection,
    exchange_prefix: str,
) -> None:
    writer = RecordingWriter()
    names = Names(exchange_prefix, "testsvc")
    good = [artist(i) for i in range(100, 110)]
    batch = orjson.dumps(
        {
            "type": "batch",
            "data_type": "artists",
            "records": [{"id": "200", "name": "ok"}, {"id": "bad id"}, {"id": "201"}],
        }
    )
    async with start_service(writer) as running:
        bodies = [good[0], *POISON.values(), *good[1:], batch]
        await publish(amqp_connection, exchange_prefix, DataType.ARTISTS, *bodies)
        await eventually(lambda: writer.count(DataType.ARTISTS) == 12, what="valid records")
        await eventually(
            lambda: running.service.metrics.types[DataType.ARTISTS].dead_lettered == len(POISON) + 1
        )
        assert running.service.status()[0]
    channel = await amqp_connection.channel()
    dlq = await channel.declare_queue(names.dead_letter_queue(DataType.ARTISTS), passive=True)
    reasons = []
    async with dlq.iterator(timeout=10) as messages:
        async for message in messages:
            reasons.append(str(message.headers[REASON_HEADER]))
            await message.ack()
            if len(reasons) == len(POISON) + 1:
                break
    assert any("not UTF-8" in r for r in reasons)
    assert any("not JSON" in r for r in reasons)
    assert any("unknown message type" in r for r in reasons)
    assert any("NUL" in r for r in reasons)
    assert any("'tracklist'" in r for r in reasons)
    assert sorted(writer.written[DataType.ARTISTS]) == sorted(
        [str(i) for i in range(100, 110)] + ["200", "201"]
    )


async def test_stop_drains_pending_and_acks(
    start_service: StartService,
    amqp_connection: aio_pika.abc.AbstractConnection,
    exchange_prefix: str,
) -> None:
    writer = RecordingWriter()
    names = Names(exchange_prefix, "testsvc")
    async with start_service(writer, batch_size=100, flush_interval=3600.0) as running:
        await publish(
            amqp_connection, exchange_prefix, DataType.LABELS, *(artist(i) for i in range(7))
        )
        await eventually(lambda: running.service.metrics.types[DataType.LABELS].consumed == 7)
        # Pending: all but the first window, written when the prefetch was resized.
        assert writer.count(DataType.LABELS) <= 4
        running.stop.set()
        assert await asyncio.wait_for(running.task, timeout=20) == 0
    assert writer.count(DataType.LABELS) == 7
    assert await ready_count(amqp_connection, names.queue(DataType.LABELS)) == 0


async def test_file_complete_runs_after_every_record_is_written(
    start_service: StartService,
    amqp_connection: aio_pika.abc.AbstractConnection,
    exchange_prefix: str,
) -> None:
    writer = RecordingWriter()
    complete = orjson.dumps(
        {
            "type": "file_complete",
            "data_type": "masters",
            "file": "discogs_20260301_masters.xml.gz",
            "total_processed": 30,
        }
    )
    async with start_service(writer, batch_size=100, flush_interval=3600.0):
        # The first message resizes the prefetch while the rest are already delivered: the
        # resize must not let file_complete overtake them.
        bodies = [orjson.dumps({"id": str(i), "title": "t"}) for i in range(30)]
        await publish(amqp_connection, exchange_prefix, DataType.MASTERS, *bodies, complete)
        await eventually(lambda: any(e[0] == "file_complete" for e in writer.events))
    kinds = [e[0] for e in writer.events if e[1] is DataType.MASTERS]
    assert kinds[-1] == "file_complete"
    assert set(kinds[:-1]) == {"write"}
    assert writer.count(DataType.MASTERS) == 30


async def test_a_resized_prefetch_consumes_again_only_once_the_first_window_is_acked(
    start_service: StartService,
    amqp_connection: aio_pika.abc.AbstractConnection,
    exchange_prefix: str,
) -> None:
    # A lost channel gives back each consumer's unacked messages as a run of its own, the
    # runs in no fixed order: so two consumers must never hold unacked messages at once,
    # or a completion message could come back ahead of the records sent before it.
    writer = RecordingWriter()
    writer.gate.clear()
    queue = Names(exchange_prefix, "testsvc").queue(DataType.MASTERS)
    bodies = [orjson.dumps({"id": str(i), "title": "t"}) for i in range(10)]
    complete = {"type": "file_complete", "data_type": "masters", "file": "m.xml.gz"}
    bodies.append(orjson.dumps(complete | {"total_processed": 10}))
    async with start_service(writer, batch_size=100, flush_interval=3600.0) as running:
        prefetch = running.service.prefetch
        await eventually(lambda: DataType.MASTERS in prefetch, what="consumer set up")
        await publish(amqp_connection, exchange_prefix, DataType.MASTERS, *bodies)
        # One-record messages: what the first window (up to 4) took is written at once,
        # long before a batch of 100 fills or the flush interval ends.
        await eventually(lambda: len(writer.started) > 0, what="the first window written")
        first = list(writer.started)
        assert first == [str(i) for i in range(len(first))]
        assert len(first) <= 4
        assert await ready_count(amqp_connection, queue) == 11 - len(first)
        assert prefetch[DataType.MASTERS] == 4
        writer.gate.set()
        await eventually(lambda: ("file_complete", DataType.MASTERS, []) in writer.events)
        assert prefetch[DataType.MASTERS] == 200
    rest = [str(i) for i in range(len(first), 10)]
    assert [e[2] for e in writer.events] == [first, rest, []]


async def test_health_and_metrics_endpoints(
    start_service: StartService,
    amqp_connection: aio_pika.abc.AbstractConnection,
    exchange_prefix: str,
) -> None:
    writer = RecordingWriter()
    async with start_service(writer) as running:
        await publish(
            amqp_connection, exchange_prefix, DataType.ARTISTS, *(artist(i) for i in range(5))
        )
        await eventually(lambda: writer.count(DataType.ARTISTS) == 5)
        assert running.service.health is not None
        port = running.service.health.port
        status, health = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/health")
        assert status == 200
        body = orjson.loads(health)
        assert body["status"] == "ok"
        assert body["types"]["artists"]["written"] == 5
        _, metrics = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/metrics")
        text = metrics.decode()
        assert 'records_written_total{data_type="artists"} 5.0' in text
        assert "queue_depth" in text
        for secret in ("discogs:discogs", "discogs-pass"):
            assert secret not in text
            assert secret not in health.decode()
        running.stop.set()
        await asyncio.wait_for(running.task, timeout=20)


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


async def test_prefetch_follows_the_message_size_and_all_records_load(
    start_service: StartService,
    amqp_connection: aio_pika.abc.AbstractConnection,
    exchange_prefix: str,
) -> None:
    writer = RecordingWriter()
    batches = [
        orjson.dumps(
            {
                "type": "batch",
                "data_type": "artists",
                "records": [{"id": str(b * 50 + i), "name": "n"} for i in range(50)],
            }
        )
        for b in range(8)
    ]
    async with start_service(writer) as running:
        prefetch = running.service.prefetch
        await eventually(lambda: DataType.ARTISTS in prefetch, what="consumer set up")
        assert prefetch[DataType.ARTISTS] == 4  # small until the messages are seen
        await publish(amqp_connection, exchange_prefix, DataType.ARTISTS, *batches)
        await eventually(lambda: writer.count(DataType.ARTISTS) == 400, what="all records")
        assert prefetch[DataType.ARTISTS] == 4
        await publish(amqp_connection, exchange_prefix, DataType.ARTISTS, artist(1000))
        await eventually(lambda: prefetch[DataType.ARTISTS] == 10, what="one-record window")
        await eventually(lambda: writer.count(DataType.ARTISTS) == 401, what="the single")


async def test_consumption_resumes_after_the_broker_drops_the_connection(
    start_service: StartService,
    amqp_connection: aio_pika.abc.AbstractConnection,
    exchange_prefix: str,
) -> None:
    writer = RecordingWriter()
    name = f"{exchange_prefix}-svc"
    url = f"{servers.AMQP_URL}?name={name}&reconnect_interval=0.2"
    async with start_service(writer, amqp_url=url) as running:
        await publish(amqp_connection, exchange_prefix, DataType.ARTISTS, artist(1), artist(2))
        await eventually(lambda: writer.count(DataType.ARTISTS) == 2, what="before the drop")
        assert await close_connections(name) == 1
        await publish(amqp_connection, exchange_prefix, DataType.ARTISTS, artist(3), artist(4))
        await eventually(
            lambda: writer.count(DataType.ARTISTS) == 4, within=30, what="after reconnecting"
        )
        await eventually(lambda: running.service.status()[0], what="healthy again")
        assert not running.task.done()
    queue = Names(exchange_prefix, "testsvc").queue(DataType.ARTISTS)
    await eventually(lambda: _count_is(amqp_connection, queue, 0), what="all acked")


async def test_a_dead_node_in_the_list_is_passed_over_and_a_lost_connection_reopened(
    start_service: StartService,
    amqp_connection: aio_pika.abc.AbstractConnection,
    exchange_prefix: str,
) -> None:
    with socket.socket() as s:  # a port nobody listens on: a cluster node that is down
        s.bind(("127.0.0.1", 0))
        dead = f"amqp://u:p@127.0.0.1:{s.getsockname()[1]}/"
    name = f"{exchange_prefix}-svc"
    live = f"{servers.AMQP_URL}?name={name}"
    writer = RecordingWriter()
    async with start_service(writer, amqp_url=f"{dead},{live}") as running:
        health = running.service.status()[1]
        assert health["node"] == "127.0.0.1:5672"
        await publish(amqp_connection, exchange_prefix, DataType.ARTISTS, artist(1))
        await eventually(lambda: writer.count(DataType.ARTISTS) == 1, what="consumed")
        assert await close_connections(name) == 1
        # The next node of the list (the dead one) is tried first, then the live one again.
        await publish(amqp_connection, exchange_prefix, DataType.ARTISTS, artist(2))
        await eventually(lambda: writer.count(DataType.ARTISTS) == 2, within=30, what="resumed")
    queue = Names(exchange_prefix, "testsvc").queue(DataType.ARTISTS)
    await eventually(lambda: _count_is(amqp_connection, queue, 0), what="all acked")
    # aio_pika.connect drops the Connection of a failed attempt unclosed; collected while
    # no loop runs, its __del__ leaves a close coroutine unawaited (a warning, an error
    # here, in whichever later test the collection happens). Collect it now, on the loop.
    gc.collect()
    await asyncio.sleep(0)


async def test_a_queue_deleted_under_the_service_stops_it_with_a_failure(
    start_service: StartService,
    amqp_connection: aio_pika.abc.AbstractConnection,
    exchange_prefix: str,
) -> None:
    writer = RecordingWriter()
    async with start_service(writer) as running:
        channel = await amqp_connection.channel()
        await channel.queue_delete(Names(exchange_prefix, "testsvc").queue(DataType.LABELS))
        await channel.close()
        code = await asyncio.wait_for(asyncio.shield(running.task), timeout=30)
    assert code == 1


async def test_a_dead_letter_queue_deleted_under_the_service_is_declared_again(
    start_service: StartService,
    amqp_connection: aio_pika.abc.AbstractConnection,
    exchange_prefix: str,
) -> None:
    writer = RecordingWriter()
    names = Names(exchange_prefix, "testsvc")
    dlq_name = names.dead_letter_queue(DataType.ARTISTS)
    async with start_service(writer) as running:
        channel = await amqp_connection.channel()
        await channel.queue_delete(dlq_name)  # an operator emptying it
        await publish(amqp_connection, exchange_prefix, DataType.ARTISTS, b"{not json", artist(1))
        await eventually(lambda: writer.count(DataType.ARTISTS) == 1, what="the good record")
        stats = running.service.metrics.types[DataType.ARTISTS]
        await eventually(lambda: stats.dead_lettered == 1, what="the bad one dead-lettered")
    # Not acked as sent while the broker dropped it: it waits in the queue declared again.
    [reason] = await dead_letter_reasons(exchange_prefix, "testsvc", DataType.ARTISTS, 1)
    assert "not JSON" in reason
    assert await ready_count(amqp_connection, names.queue(DataType.ARTISTS)) == 0


async def test_a_queue_the_broker_refuses_to_declare_stops_the_service_with_a_failure(
    amqp_connection: aio_pika.abc.AbstractConnection, exchange_prefix: str
) -> None:
    channel = await amqp_connection.channel()
    names = Names(exchange_prefix, "testsvc")
    # Declared before with another delivery limit: the broker refuses the service's own.
    await channel.declare_queue(
        names.queue(DataType.LABELS),
        durable=True,
        arguments={
            "x-queue-type": "quorum",
            "x-delivery-limit": 3,
            "x-dead-letter-exchange": names.dead_letter_exchange(),
            "x-dead-letter-routing-key": DataType.LABELS.value,
        },
    )
    await channel.close()
    settings = RuntimeSettings(
        discogs_exchange_prefix=exchange_prefix, amqp_url=servers.AMQP_URL, health_port=0
    )
    service = Service(name="testsvc", settings=settings, writer=RecordingWriter())
    code = await asyncio.wait_for(service.run(asyncio.Event()), timeout=30)
    assert code == 1  # at once, not a loop of connecting and declaring again
