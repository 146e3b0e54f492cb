"""Chunked reading in a worker thread: complete, ordered, and a break keeps what came before."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from common.records import Record
from extractor.packing import RecordTooLarge
from extractor.source import ChunkReader
from extractor.xmlparse import DumpError, DumpFile

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"


def ids(records: list[Record], first: int) -> list[bytes]:
    return [r.id.encode() for r in records]


async def read_all(reader: ChunkReader) -> list[bytes]:
    bodies: list[bytes] = []
    while (chunk := await reader.next()) is not None:
        assert len(chunk.bodies) == chunk.records
        assert 0.0 < chunk.fraction <= 1.0
        bodies.extend(chunk.bodies)
    return bodies


async def drain_into(reader: ChunkReader, got: list[bytes]) -> None:
    while (chunk := await reader.next()) is not None:
        got.extend(chunk.bodies)


async def test_reads_every_record_in_order() -> None:
    dump = DumpFile.from_path(SAMPLES / "discogs_20200806_labels.xml.gz")
    async with ChunkReader(dump, 300, ids) as reader:
        got = await read_all(reader)
        assert await reader.next() is None  # reading past the end stays at the end
    assert len(got) == 1000
    assert len(set(got)) == 1000


async def test_break_hands_out_records_before_it_then_raises(tmp_path: Path) -> None:
    path = tmp_path / "discogs_20200806_labels.xml.gz"
    labels = b"".join(b"<label><id>%d</id><name>L</name></label>" % i for i in range(1, 6))
    path.write_bytes(gzip.compress(b"<labels>" + labels + b"<label><id>6</i"))
    got: list[bytes] = []
    async with ChunkReader(DumpFile.from_path(path), 2, ids) as reader:
        with pytest.raises(DumpError, match=f"{path}: malformed XML"):
            await drain_into(reader, got)
    assert got == [b"1", b"2", b"3", b"4", b"5"]


async def test_closing_early_is_clean_and_idempotent() -> None:
    dump = DumpFile.from_path(SAMPLES / "discogs_20200806_releases.xml.gz")
    reader = ChunkReader(dump, 10, ids)
    chunk = await reader.next()
    assert chunk is not None
    assert chunk.records == 10
    await reader.close()
    await reader.close()
    with pytest.raises(RuntimeError):
        await reader.next()


async def test_a_record_too_large_sends_what_came_before_it_then_raises() -> None:
    dump = DumpFile.from_path(SAMPLES / "discogs_20200806_labels.xml.gz")

    def refuse_the_fifth(records: list[Record], first: int) -> list[bytes]:
        bodies = ids(records, first)
        if first <= 5 < first + len(records):
            index = 5 - first
            raise RecordTooLarge("record #5 is too large", bodies[:index], index)
        return bodies

    got: list[bytes] = []
    async with ChunkReader(dump, 3, refuse_the_fifth) as reader:
        with pytest.raises(RecordTooLarge, match="record #5"):
            await drain_into(reader, got)
    assert len(got) == 4
