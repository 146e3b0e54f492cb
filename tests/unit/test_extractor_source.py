"""A dump as message bodies through the workers: complete, in order, breaks keep what came
before, and a worker that dies is an error, not a hang."""

from __future__ import annotations

import asyncio
import gzip
import multiprocessing
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from bench.dumpdelta import derive
from common.records import DataType
from extractor.cutting import cut
from extractor.delta import open_selection, select_chunks
from extractor.envelopes import batch_body
from extractor.manifest import manifest_path, read_info
from extractor.packing import Packing
from extractor.source import ChunkReader
from extractor.workers import WorkerDied, Workers
from extractor.xmlparse import DumpError, DumpFile, iter_records

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"
RELEASES = DumpFile.from_path(SAMPLES / "discogs_20200806_releases.xml.gz")


@pytest.fixture(params=[1, 2], ids=["in-process", "two-processes"])
async def workers(request: pytest.FixtureRequest) -> AsyncIterator[Workers]:
    async with Workers(request.param) as pool:
        yield pool


def reader(dump: DumpFile, workers: Workers, packing: Packing, chunk: int = 100) -> ChunkReader:
    return ChunkReader(dump, packing, workers, chunk_records=chunk, chunk_bytes=1 << 30, ahead=3)


def ids_of(bodies: list[bytes]) -> list[str]:
    return [r["id"] for b in bodies for r in orjson.loads(b)["records"]]


async def read_all(chunks: ChunkReader, into: list[bytes]) -> int:
    records = 0
    while (chunk := await chunks.next()) is not None:
        assert 0.0 < chunk.fraction <= 1.0
        into.extend(chunk.bodies)
        records += chunk.records
    return records


async def test_every_record_once_in_file_order(workers: Workers) -> None:
    bodies: list[bytes] = []
    async with reader(RELEASES, workers, Packing(batch_size=30)) as chunks:
        assert await read_all(chunks, bodies) == 1000
        assert await chunks.next() is None  # reading past the end stays at the end
    assert ids_of(bodies) == [r.id for r in iter_records(RELEASES)]
    assert len(bodies) == 10 * 4  # chunks of 100 records, batches of 30: 30+30+30+10


async def test_a_break_hands_out_the_records_before_it_then_raises(
    workers: Workers, tmp_path: Path
) -> None:
    path = tmp_path / "discogs_20200806_labels.xml.gz"
    labels = b"".join(b"<label><id>%d</id><name>L</name></label>" % i for i in range(1, 6))
    path.write_bytes(gzip.compress(b"<labels>" + labels + b"<label><id>6</i"))
    bodies: list[bytes] = []
    async with reader(DumpFile.from_path(path), workers, Packing(batch_size=2), 2) as chunks:
        with pytest.raises(DumpError, match=f"{path}: malformed XML .* after 5 records"):
            await read_all(chunks, bodies)
        with pytest.raises(DumpError):
            await chunks.next()  # stays broken
    assert ids_of(bodies) == ["1", "2", "3", "4", "5"]


async def test_a_bad_record_inside_a_chunk_keeps_those_before_it(
    workers: Workers, tmp_path: Path
) -> None:
    path = tmp_path / "discogs_20200806_labels.xml"
    labels = [b"<label><id>%d</id></label>" % i for i in range(1, 8)]
    labels[4] = b"<label><id>5</id></lable>"
    path.write_bytes(b"<labels>" + b"".join(labels) + b"</labels>")
    bodies: list[bytes] = []
    async with reader(DumpFile.from_path(path), workers, Packing(batch_size=3), 6) as chunks:
        with pytest.raises(DumpError, match=r"malformed XML at line 1, column \d+ after 4 records"):
            await read_all(chunks, bodies)
    assert ids_of(bodies) == ["1", "2", "3", "4"]


async def test_a_record_over_the_limit_stops_after_those_before_it(workers: Workers) -> None:
    dump = DumpFile.from_path(SAMPLES / "discogs_20200806_artists.xml.gz")
    sizes = [len(batch_body(dump.data_type, dump.version, [r])) for r in iter_records(dump)]
    limit = max(sizes) - 1  # only the largest artist does not fit
    largest = sizes.index(max(sizes))
    packing = Packing(batch_size=10, max_message_bytes=limit, limit=limit)
    bodies: list[bytes] = []
    async with reader(dump, workers, packing) as chunks:
        with pytest.raises(DumpError, match=rf"record #{largest + 1} \(id \d+\) makes a message"):
            await read_all(chunks, bodies)
    assert len(ids_of(bodies)) == largest


async def test_a_killed_worker_is_an_error_not_a_hang() -> None:
    others = {p.pid for p in multiprocessing.active_children()}  # other tests' processes
    async with Workers(2) as workers:
        chunks = reader(RELEASES, workers, Packing(batch_size=5), chunk=5)
        async with chunks:
            assert await chunks.next() is not None
            children = [p for p in multiprocessing.active_children() if p.pid not in others]
            assert children
            for child in children:
                os.kill(child.pid or 0, signal.SIGKILL)
            bodies: list[bytes] = []
            async with asyncio.timeout(30):
                with pytest.raises(WorkerDied, match="worker process died"):
                    await read_all(chunks, bodies)


async def test_records_are_the_same_as_one_thread_reads_them(workers: Workers) -> None:
    dump = DumpFile.from_path(SAMPLES / "discogs_20200806_masters.xml.gz")
    bodies: list[bytes] = []
    async with reader(dump, workers, Packing(single=True)) as chunks:
        await read_all(chunks, bodies)
    got = [(b["id"], b["sha256"]) for b in map(orjson.loads, bodies)]
    assert got == [(r.id, r.sha256) for r in iter_records(dump)]
    assert {orjson.loads(b)["type"] for b in bodies} == {"data"}
    assert DataType.MASTERS.value in str(dump.path)


def manifest_of(state: Path, dump: DumpFile) -> None:
    """The manifest a full publish of ``dump`` would leave in ``state``."""
    selection = open_selection(state, dump, full=False)
    assert selection is not None
    cuts = cut(dump, max_records=64, max_bytes=1 << 20)
    for _ in select_chunks(cuts, selection, max_records=64, max_bytes=1 << 20):
        pass
    selection.new.commit()


async def test_a_delta_sends_the_changed_and_added_picked_by_the_workers(
    workers: Workers, tmp_path: Path
) -> None:
    manifest_of(tmp_path, RELEASES)
    changes = derive(SAMPLES, tmp_path / "b", "20200906")[DataType.RELEASES]
    dump = DumpFile.from_path(tmp_path / "b" / "discogs_20200906_releases.xml.gz")
    selection = open_selection(tmp_path, dump, full=False)
    assert selection is not None
    assert selection.old is not None
    bodies: list[bytes] = []
    chunks = ChunkReader(
        dump, Packing(batch_size=4), workers, chunk_records=50, chunk_bytes=1 << 30, ahead=2,
        selection=selection,
    )  # fmt: skip
    async with chunks:
        assert await read_all(chunks, bodies) == 15
    assert sorted(ids_of(bodies), key=int) == sorted(changes.changed + changes.added, key=int)
    assert [i for batch in selection.deleted(100) for i in batch] == changes.removed
    assert selection.counts.as_dict() == {
        "added": 5, "changed": 10, "unchanged": 985, "deleted": 5,
    }  # fmt: skip
    selection.close(keep=True)
    selection.new.commit()
    info = read_info(manifest_path(tmp_path, DataType.RELEASES))
    assert info is not None
    assert (info.version, info.count) == ("20200906", 1000)


async def test_a_delta_that_breaks_sends_what_was_picked_before_the_break(
    workers: Workers, tmp_path: Path
) -> None:
    manifest_of(tmp_path, RELEASES)
    text = gzip.decompress(RELEASES.path.read_bytes())
    at = text.index(b'<release id="', len(text) // 2)
    changed = text[:at].replace(b"<title>", b"<title>B ")  # every release before ``at``
    path = tmp_path / "discogs_20200906_releases.xml.gz"
    path.write_bytes(gzip.compress(changed + text[at:])[:-100])  # and cut short
    before = text[:at].count(b"<release id=")
    selection = open_selection(tmp_path, DumpFile.from_path(path), full=False)
    assert selection is not None
    bodies: list[bytes] = []
    chunks = ChunkReader(
        DumpFile.from_path(path), Packing(batch_size=7), workers, chunk_records=30,
        chunk_bytes=1 << 30, ahead=2, selection=selection,
    )  # fmt: skip
    async with chunks:
        with pytest.raises(DumpError, match=f"{path}: truncated or corrupt gzip"):
            await read_all(chunks, bodies)
    assert ids_of(bodies) == [r.id for r in iter_records(RELEASES)][:before]
    selection.close(keep=False)


async def test_a_failure_of_the_reader_thread_is_an_error_not_a_hang(
    workers: Workers, tmp_path: Path
) -> None:
    # With a state folder the reader thread writes each id to the manifest; an id past 64
    # bits fails there with an error no rule of reading a dump expects (as a full disk
    # under the state folder would).
    text = gzip.decompress(RELEASES.path.read_bytes())
    at = text.index(b'<release id="', len(text) // 2) + len(b'<release id="')
    end = text.index(b'"', at)
    path = tmp_path / "discogs_20200806_releases.xml.gz"
    path.write_bytes(gzip.compress(text[:at] + str(2**64).encode() + text[end:]))
    dump = DumpFile.from_path(path)
    selection = open_selection(tmp_path, dump, full=True)
    assert selection is not None
    chunks = ChunkReader(
        dump, Packing(batch_size=30), workers, chunk_records=30, chunk_bytes=1 << 30, ahead=2,
        selection=selection,
    )  # fmt: skip
    async with chunks:
        with pytest.raises(DumpError, match=f"{path}: reading stopped: .*error"):
            await asyncio.wait_for(read_all(chunks, []), timeout=30)
        with pytest.raises(DumpError):  # and it stays broken
            await chunks.next()
    selection.close(keep=False)
