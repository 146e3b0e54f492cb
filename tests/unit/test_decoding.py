"""common.decoding: decoding on worker processes, a thread, or inline, with projections.

The worker processes are real (spawned); what they decode is compared with
common.messages.decode run in this process.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from common.decoding import Decoder, decode_projected
from common.messages import DataMessage, FileComplete, InvalidMessage, Message, decode
from common.records import DataType, Record

R = DataType.RELEASES
LIMIT = 16 * 1024 * 1024


def batch_body(n: int, **extra: object) -> bytes:
    records = [
        {"id": str(i), "title": f"Title {i}", "released": "1999-01-01", "notes": "n" * 200}
        for i in range(1, n + 1)
    ]
    return orjson.dumps({"type": "batch", "data_type": "releases", "records": records, **extra})


def title_only(data_type: DataType, record: Record) -> Record:
    """A projection (module level, so it pickles): keep the id and title."""
    return Record(record.id, record.sha256, {"title": record.data["title"]}, record.version)


def where(data_type: DataType, record: Record) -> Record:
    """A projection that records which process decoded the record."""
    return record.with_data({"pid": os.getpid()})


def pids(message: Message) -> set[int]:
    """The processes that decoded ``message``'s records (projected with :func:`where`)."""
    assert isinstance(message, DataMessage)
    return {r.data["pid"] for r in message.records}


@pytest.fixture
async def workers() -> AsyncIterator[Decoder]:
    async with Decoder(workers=1, max_bytes=LIMIT, inline_bytes=1024) as decoder:
        yield decoder


async def test_large_bodies_are_decoded_on_a_worker_from_the_first() -> None:
    body = batch_body(5)
    async with Decoder(workers=1, max_bytes=LIMIT, projection=where, inline_bytes=1) as d:
        first = await d.decode(R, body)  # waits for the worker to start
        second = await d.decode(R, body)
    assert len(pids(first)) == 1
    assert pids(first) == pids(second) != {os.getpid()}


async def test_a_worker_decodes_exactly_what_decode_does(workers: Decoder) -> None:
    body = batch_body(300, version="20260101")
    assert await workers.decode(R, body) == decode(R, body, max_bytes=LIMIT)


async def test_the_projection_runs_on_each_record() -> None:
    body = batch_body(50)
    async with Decoder(workers=1, max_bytes=LIMIT, projection=title_only, inline_bytes=1) as d:
        message = await d.decode(R, body)
    assert isinstance(message, DataMessage)
    assert [r.data for r in message.records] == [{"title": f"Title {i}"} for i in range(1, 51)]
    assert message == decode_projected(R, body, LIMIT, title_only)


def test_a_projected_message_keeps_everything_but_the_records() -> None:
    records = [{"id": "1", "title": "ok"}, {"title": "no id"}]
    body = orjson.dumps({"type": "batch", "records": records})
    plain = decode(R, body, max_bytes=LIMIT)
    projected = decode_projected(R, body, LIMIT, title_only)
    assert isinstance(plain, DataMessage)
    assert projected == dataclasses.replace(plain, records=[title_only(R, plain.records[0])])


async def test_invalid_bodies_raise_invalid_message_through_the_worker(workers: Decoder) -> None:
    bad = b"[" * 2000 + b"not json" + b" " * 2000
    with pytest.raises(InvalidMessage, match="not JSON"):
        await workers.decode(R, bad)


async def test_bad_records_in_a_batch_come_back_rejected_with_the_good_ones(
    workers: Decoder,
) -> None:
    records = [{"id": "1", "title": "ok", "notes": "x" * 2000}, {"title": "no id"}]
    body = orjson.dumps({"type": "batch", "records": records})
    message = await workers.decode(R, body)
    assert isinstance(message, DataMessage)
    assert [r.id for r in message.records] == ["1"]
    assert [(b.index, b.reason) for b in message.rejected] == [(1, "record has no id")]


async def test_oversized_bodies_are_refused_unread_without_a_worker() -> None:
    async with Decoder(workers=1, max_bytes=5000, inline_bytes=10) as decoder:
        with pytest.raises(InvalidMessage, match="exceeds the limit of 5000"):
            await decoder.decode(R, b" " * 6000)


async def test_small_bodies_start_decoded() -> None:
    async with Decoder(workers=1, max_bytes=LIMIT) as decoder:
        body = orjson.dumps({"type": "file_complete", "data_type": "releases", "file": "f"})
        done = decoder.start(R, body)
        assert done.done()
        assert isinstance(await done, FileComplete)
        failed = decoder.start(R, b"not json")
        assert failed.done()
        with pytest.raises(InvalidMessage):
            await failed


async def test_started_decodings_of_large_bodies_run_ahead_in_order(workers: Decoder) -> None:
    bodies = [batch_body(100 + i) for i in range(4)]
    futures = [workers.start(R, body) for body in bodies]
    results = await asyncio.gather(*futures)
    assert [len(m.records) for m in results if isinstance(m, DataMessage)] == [100, 101, 102, 103]


async def test_without_workers_large_bodies_decode_on_a_thread() -> None:
    body = batch_body(100)
    async with Decoder(workers=0, max_bytes=LIMIT, inline_bytes=10) as decoder:
        assert await decoder.decode(R, body) == decode(R, body, max_bytes=LIMIT)


async def test_a_killed_worker_loses_nothing_and_the_pool_is_restarted() -> None:
    body = batch_body(200)
    ids = [str(i) for i in range(1, 201)]
    async with Decoder(workers=1, max_bytes=LIMIT, projection=where, inline_bytes=1) as d:
        (killed,) = pids(await d.decode(R, body))
        os.kill(killed, signal.SIGKILL)  # the way the OOM killer would
        during = await d.decode(R, body)
        after = await d.decode(R, body)
    assert pids(during) == {os.getpid()}  # decoded on a thread while the pool restarts
    assert pids(after).isdisjoint({killed, os.getpid()})  # and by the new pool
    for message in (during, after):
        assert isinstance(message, DataMessage)
        assert [r.id for r in message.records] == ids


async def test_close_is_idempotent_and_a_closed_decoder_still_decodes_on_a_thread() -> None:
    decoder = Decoder(workers=1, max_bytes=LIMIT, inline_bytes=10)
    async with decoder:
        pass
    await decoder.close()
    body = batch_body(10)
    assert await decoder.decode(R, body) == decode(R, body, max_bytes=LIMIT)


def test_negative_worker_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="workers must be 0 or more"):
        Decoder(workers=-1, max_bytes=LIMIT)


ORPHAN_SCRIPT = """
import asyncio, multiprocessing, os
from common.decoding import Decoder

async def main():
    decoder = Decoder(workers=2, max_bytes=1 << 20)
    await decoder.__aenter__()
    while len(multiprocessing.active_children()) < 2:
        await asyncio.sleep(0.01)
    print(*(p.pid for p in multiprocessing.active_children()), flush=True)
    os._exit(0)  # gone without shutting the pool down, as after SIGKILL

asyncio.run(main())
"""


def running(pid: int) -> bool:
    """Whether ``pid`` still runs (an exited process that nobody reaped yet does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_workers_exit_when_the_consumer_dies_without_closing_them() -> None:
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", ORPHAN_SCRIPT],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        timeout=60,
        check=True,
    )
    pids = [int(p) for p in done.stdout.split()]
    assert len(pids) == 2
    deadline = time.monotonic() + 20
    while any(running(pid) for pid in pids):
        assert time.monotonic() < deadline, f"workers {pids} outlived their consumer"
        time.sleep(0.05)
