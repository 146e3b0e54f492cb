"""The files of a run read in turn, each next one opened once the one before is cut; and
the confirm window's drain, which waits for what was published before it only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from extractor.files import FilesAhead, OpenFile, collect_dumps
from extractor.packing import Packing
from extractor.source import ChunkReader
from extractor.window import ConfirmWindow
from extractor.workers import Workers
from extractor.xmlparse import DumpFile, iter_records
from tests.support import eventually

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"


@pytest.fixture
async def workers() -> AsyncIterator[Workers]:
    async with Workers(1) as pool:
        yield pool


def opener(workers: Workers, opened: list[DumpFile], chunk: int = 100) -> FilesAhead:
    """The sample files (1,000 records each), in chunks of ``chunk`` records, two ahead."""

    def open_file(dump: DumpFile) -> OpenFile:
        opened.append(dump)
        reader = ChunkReader(
            dump, Packing(batch_size=100), workers, chunk_records=chunk, chunk_bytes=1 << 30
        )
        return OpenFile(dump, reader)

    return FilesAhead(collect_dumps([SAMPLES]), open_file)


async def until_cut(file: OpenFile) -> None:
    await eventually(lambda: file.reader.cut_all, within=30, what="the file cut to its end")


async def test_each_file_in_order_and_the_next_opened_once_the_one_before_is_cut(
    workers: Workers,
) -> None:
    opened: list[DumpFile] = []
    async with opener(workers, opened) as files:
        seen: list[str] = []
        while (file := files.take()) is not None:
            assert opened[-1] == file.dump  # not the one after it yet: this one is not cut
            ids: list[str] = []
            while (chunk := await file.reader.next()) is not None:
                ids.extend(r["id"] for b in chunk.bodies for r in orjson.loads(b)["records"])
                files.poke()
            await until_cut(file)
            files.poke()
            assert len(opened) == min(len(seen) + 2, 4)  # the next one is open now
            await file.close(keep=True)
            assert ids == [r.id for r in iter_records(file.dump)]
            seen.append(file.dump.data_type.value)
    assert seen == ["labels", "artists", "masters", "releases"]


async def test_closing_closes_the_files_opened_ahead(workers: Workers) -> None:
    opened: list[DumpFile] = []
    files = opener(workers, opened, chunk=500)  # two chunks: cut while none is taken
    async with files:
        first = files.take()
        assert first is not None
        await until_cut(first)
        files.poke()
        assert len(opened) == 2
    assert first.closed
    assert first.reader.cut_all


async def test_a_file_that_fails_to_open_ahead_fails_when_it_is_taken(workers: Workers) -> None:
    dumps = collect_dumps([SAMPLES])

    def open_file(dump: DumpFile) -> OpenFile:
        if dump.data_type.value == "artists":
            raise OSError("no room for the manifest")
        reader = ChunkReader(dump, Packing(), workers, chunk_records=500, chunk_bytes=1 << 30)
        return OpenFile(dump, reader)

    async with FilesAhead(dumps, open_file) as files:
        first = files.take()
        assert first is not None
        await until_cut(first)
        files.poke()  # the error waits for the take
        while await first.reader.next() is not None:
            pass
        with pytest.raises(OSError, match="no room"):
            files.take()


async def test_drain_waits_for_what_was_added_before_it_only() -> None:
    window = ConfirmWindow(max_in_flight=10, max_bytes=1000)
    loop = asyncio.get_running_loop()
    early: asyncio.Future[None] = loop.create_future()
    late: asyncio.Future[None] = loop.create_future()
    window.add(early, 1)
    drained = asyncio.ensure_future(window.drain())
    await asyncio.sleep(0)
    window.add(late, 1)
    early.set_result(None)
    async with asyncio.timeout(10):
        await drained
    assert len(window) == 1
    late.set_result(None)
    await window.drain()
    assert len(window) == 0
