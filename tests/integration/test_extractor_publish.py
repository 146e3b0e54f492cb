"""The publisher on the real broker: queues bound first (as the consumers do), then consumed."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import shutil
import signal
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import orjson
import pytest
import structlog
from aio_pika.abc import AbstractConnection, AbstractQueue

from common.messages import DataMessage, ExtractionComplete, FileComplete, decode
from common.records import DataType
from extractor.broker import ConfirmingPublisher, PublishFailed
from extractor.envelopes import data_body
from extractor.publish import PublishOptions, collect_dumps, publish_dumps
from extractor.workers import WorkerDied
from extractor.xmlparse import DumpError, DumpFile, iter_records
from tests import servers
from tests.amqp_admin import close_connections
from tests.support import eventually

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "data" / "samples"
MAX_BYTES = 64 << 20


@dataclass
class Received:
    """What one type's queue held, decoded, in order."""

    messages: list[DataMessage | FileComplete | ExtractionComplete]
    bodies: list[dict[str, object]]

    def records(self) -> list[str]:
        return [r.id for m in self.messages if isinstance(m, DataMessage) for r in m.records]

    def of(self, kind: type) -> list[object]:
        return [m for m in self.messages if isinstance(m, kind)]


async def bind_queues(connection: AbstractConnection, prefix: str) -> dict[DataType, AbstractQueue]:
    """One durable quorum queue per type bound to its exchange, as the consumers declare them."""
    channel = await connection.channel()
    queues = {}
    for t in DataType:
        exchange = await channel.declare_exchange(
            f"{prefix}-{t.value}", aio_pika.ExchangeType.FANOUT, durable=True
        )
        queue = await channel.declare_queue(
            f"{prefix}-test-{t.value}", durable=True, arguments={"x-queue-type": "quorum"}
        )
        await queue.bind(exchange, routing_key="")
        queues[t] = queue
    return queues


async def drain(data_type: DataType, queue: AbstractQueue) -> Received:
    """Everything in the queue (the publisher returned, so every message is confirmed)."""
    received = Received([], [])
    while (message := await queue.get(no_ack=True, fail=False, timeout=10)) is not None:
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert message.content_type == "application/json"
        received.bodies.append(orjson.loads(message.body))
        received.messages.append(decode(data_type, message.body, max_bytes=MAX_BYTES))
    return received


async def drain_all(queues: dict[DataType, AbstractQueue]) -> dict[DataType, Received]:
    return {t: await drain(t, q) for t, q in queues.items()}


def check_file(received: Received, data_type: DataType, count: int, *, batch: int | None) -> None:
    """``count`` unique records, then one file_complete, then extraction_complete last."""
    ids = received.records()
    assert len(ids) == count
    assert len(set(ids)) == count
    data = [m for m in received.messages if isinstance(m, DataMessage)]
    assert all(not m.rejected and m.is_batch == (batch is not None) for m in data)
    if batch is not None:
        assert all(len(m.records) <= batch for m in data)
        assert len(data) == -(-count // batch)
    kinds = [type(m) for m in received.messages]
    assert kinds[-2:] == [FileComplete, ExtractionComplete]
    assert kinds.count(FileComplete) == 1
    complete = received.messages[-2]
    assert isinstance(complete, FileComplete)
    assert complete.total_processed == count
    assert complete.file == f"discogs_20200806_{data_type.value}.xml.gz"
    assert complete.version == "20200806"


async def test_batches_of_every_sample(
    amqp_connection: AbstractConnection, exchange_prefix: str
) -> None:
    queues = await bind_queues(amqp_connection, exchange_prefix)
    counts = await publish_dumps(
        collect_dumps([SAMPLES]),
        url=servers.AMQP_URL,
        prefix=exchange_prefix,
        options=PublishOptions(batch_size=300),
    )
    assert counts == dict.fromkeys(DataType, 1000)
    received = await drain_all(queues)
    for t in DataType:
        check_file(received[t], t, 1000, batch=300)
        batch = received[t].bodies[0]
        assert list(batch) == ["type", "data_type", "version", "records"]
        assert (batch["type"], batch["data_type"], batch["version"]) == (
            "batch",
            t.value,
            "20200806",
        )
        done = received[t].bodies[-1]
        assert done["record_counts"] == {t.value: 1000 for t in DataType}
        assert set(done) == {"type", "version", "timestamp", "started_at", "record_counts"}
    release = next(
        r for m in received[DataType.RELEASES].messages if isinstance(m, DataMessage)
        for r in m.records if r.id == "1"
    )  # fmt: skip
    assert release.data["title"] == "Stockholm"
    assert release.data["labels"] == [{"id": "5", "name": "Svek", "catno": "SK032"}]


async def test_single_mode_one_record_per_message(
    amqp_connection: AbstractConnection, exchange_prefix: str
) -> None:
    queues = await bind_queues(amqp_connection, exchange_prefix)
    files = [
        SAMPLES / "discogs_20200806_masters.xml.gz",
        SAMPLES / "discogs_20200806_labels.xml.gz",
    ]
    counts = await publish_dumps(
        collect_dumps(files),
        url=servers.AMQP_URL,
        prefix=exchange_prefix,
        options=PublishOptions(single=True, max_in_flight=64),
    )
    assert counts == {DataType.MASTERS: 1000, DataType.LABELS: 1000}
    received = await drain_all(queues)
    for t in (DataType.MASTERS, DataType.LABELS):
        check_file(received[t], t, 1000, batch=None)
        first = received[t].bodies[0]
        assert list(first)[:3] == ["type", "id", "sha256"]
        assert first["type"] == "data"
        assert first["version"] == "20200806"
    for t in (DataType.ARTISTS, DataType.RELEASES):  # not in this run: only the end marker
        assert [type(m) for m in received[t].messages] == [ExtractionComplete]
    done = received[DataType.ARTISTS].messages[0]
    assert isinstance(done, ExtractionComplete)
    assert done.record_counts == {"masters": 1000, "labels": 1000}


async def test_unroutable_publish_is_an_error(exchange_prefix: str) -> None:
    dumps = [DumpFile.from_path(SAMPLES / "discogs_20200806_labels.xml.gz")]
    with pytest.raises(PublishFailed, match=r"unroutable \(NO_ROUTE\): no queue is bound"):
        await publish_dumps(
            dumps, url=servers.AMQP_URL, prefix=exchange_prefix, options=PublishOptions()
        )


async def test_a_lost_connection_is_reopened_and_the_unconfirmed_published_again(
    amqp_connection: AbstractConnection, exchange_prefix: str
) -> None:
    queues = await bind_queues(amqp_connection, exchange_prefix)
    records = list(iter_records(DumpFile.from_path(SAMPLES / "discogs_20200806_labels.xml.gz")))
    name = f"{exchange_prefix}-pub"
    with structlog.testing.capture_logs() as logs:
        async with ConfirmingPublisher(
            servers.AMQP_URL, exchange_prefix, max_in_flight=64, name=name
        ) as publisher:
            for i, record in enumerate(records):
                if i == 300:  # mid-stream, with messages unconfirmed
                    assert await close_connections(name) == 1
                await publisher.publish(DataType.LABELS, data_body("20200806", record))
            await publisher.flush()
    received = await drain(DataType.LABELS, queues[DataType.LABELS])
    ids = received.records()
    assert set(ids) == {r.id for r in records}  # every one, some maybe twice
    lost = [e for e in logs if e["event"] == "reconnecting to the broker"]
    assert len(lost) == 1
    assert [e["event"] for e in logs if e.get("new_node")] == ["amqp failover"]


async def run_cli(prefix: str, *args: str) -> tuple[int, str]:
    """The installed console command in a subprocess; returns the exit code and stderr."""
    env = {
        **os.environ,
        "AMQP_URL": servers.AMQP_URL,
        "DISCOGS_EXCHANGE_PREFIX": prefix,
        "PYTHONPATH": str(ROOT),
        "LOG_FORMAT": "json",
    }
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "extractor"),
        *args,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(90):
        _, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, err.decode()


async def test_console_command_publishes_the_samples(
    amqp_connection: AbstractConnection, exchange_prefix: str
) -> None:
    queues = await bind_queues(amqp_connection, exchange_prefix)
    code, err = await run_cli(exchange_prefix, "publish", str(SAMPLES), "--batch-size", "1000")
    assert code == 0, err
    assert "discogs:discogs" not in err  # the password never reaches the log
    received = await drain_all(queues)
    for t in DataType:
        check_file(received[t], t, 1000, batch=1000)
    # each file's last progress line: every byte of it read, and nothing left to wait for
    done = {e["file"]: e for e in map(json.loads, err.splitlines()) if e.get("event") == "done"}
    for path in SAMPLES.glob("*.xml.gz"):
        assert done[path.name]["bytes_read"] == path.stat().st_size
        assert done[path.name]["eta_s"] == 0


async def test_broken_file_keeps_what_came_before_and_exits_1(
    amqp_connection: AbstractConnection, exchange_prefix: str, tmp_path: Path
) -> None:
    shutil.copy(SAMPLES / "discogs_20200806_labels.xml.gz", tmp_path)
    data = (SAMPLES / "discogs_20200806_releases.xml.gz").read_bytes()
    broken = tmp_path / "discogs_20200806_releases.xml.gz"
    broken.write_bytes(data[: len(data) // 2])
    readable: list[str] = []
    with pytest.raises(DumpError):
        readable.extend(r.id for r in iter_records(DumpFile.from_path(broken)))
    queues = await bind_queues(amqp_connection, exchange_prefix)

    code, err = await run_cli(exchange_prefix, "publish", str(tmp_path), "--batch-size", "100")

    assert code == 1
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"extractor: error: {broken}: truncated or corrupt gzip at ")
    assert f"after {len(readable)} records" in last
    received = await drain_all(queues)
    releases = received[DataType.RELEASES]
    assert releases.records() == readable  # every record read before the break, in order
    assert Counter(type(m) for m in releases.messages) == {DataMessage: -(-len(readable) // 100)}
    labels = received[DataType.LABELS]
    assert len(labels.records()) == 1000
    assert [type(m) for m in labels.messages][-1] is FileComplete  # no extraction_complete


async def test_a_killed_worker_stops_the_run_with_an_error(
    amqp_connection: AbstractConnection, exchange_prefix: str
) -> None:
    queues = await bind_queues(amqp_connection, exchange_prefix)
    others = {p.pid for p in multiprocessing.active_children()}  # other tests' processes

    def ours() -> list[multiprocessing.process.BaseProcess]:
        return [p for p in multiprocessing.active_children() if p.pid not in others]

    run = asyncio.ensure_future(
        publish_dumps(
            [DumpFile.from_path(SAMPLES / "discogs_20200806_releases.xml.gz")],
            url=servers.AMQP_URL,
            prefix=exchange_prefix,
            options=PublishOptions(batch_size=10, workers=2),
        )
    )
    await eventually(lambda: bool(ours()), what="workers started")
    for child in ours():
        os.kill(child.pid or 0, signal.SIGKILL)
    async with asyncio.timeout(30):
        with pytest.raises(WorkerDied, match="worker process died"):
            await run
    received = await drain(DataType.RELEASES, queues[DataType.RELEASES])
    assert FileComplete not in {type(m) for m in received.messages}
    assert len(received.records()) == len(set(received.records())) < 1000
