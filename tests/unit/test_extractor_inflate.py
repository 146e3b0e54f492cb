"""Decompressing ahead on a thread: the same bytes as gzip, breaks reported in order, and
a reader left early stops the thread."""

from __future__ import annotations

import gzip
import os
import threading
from pathlib import Path

import pytest

from extractor import inflate
from extractor.inflate import blocks


def inflating() -> int:
    return sum(t.name == "dump-inflate" for t in threading.enumerate())


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inflate, "BLOCK", 1000)
    monkeypatch.setattr(inflate, "_COMPRESSED", 300)


def test_every_member_of_a_gzip_file_and_a_plain_file(tmp_path: Path) -> None:
    data = os.urandom(5000).hex().encode()
    members = tmp_path / "x.xml.gz"
    members.write_bytes(gzip.compress(data[:7000]) + gzip.compress(data[7000:]) + b"\0\0")
    plain = tmp_path / "x.xml"
    plain.write_bytes(data)
    for path in (members, plain):
        got = list(blocks(path))
        assert b"".join(b.data for b in got) == data
        assert max(len(b.data) for b in got) <= 1000
        assert (got[-1].data, got[-1].error, got[-1].position) == (b"", None, path.stat().st_size)


def test_a_truncated_or_corrupt_file_ends_with_its_error(tmp_path: Path) -> None:
    data = gzip.compress(os.urandom(20000))
    cut_short = tmp_path / "short.gz"
    cut_short.write_bytes(data[: len(data) // 2])
    corrupt = tmp_path / "corrupt.gz"
    corrupt.write_bytes(data[:100] + bytes(50) + data[150:])
    for path, error in ((cut_short, EOFError), (corrupt, inflate.INFLATE_ERROR)):
        got = list(blocks(path))
        assert isinstance(got[-1].error, error)
        assert all(b.error is None for b in got[:-1])
    missing = list(blocks(tmp_path / "none.gz"))
    assert [type(b.error) for b in missing] == [FileNotFoundError]


def test_a_wrong_checksum_or_length_in_a_trailer_is_an_error(tmp_path: Path) -> None:
    data = gzip.compress(os.urandom(20000))
    for name, trailer in (("crc", 8), ("size", 4)):
        path = tmp_path / f"{name}.gz"
        at = len(data) - trailer
        path.write_bytes(data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :])
        got = list(blocks(path))
        assert isinstance(got[-1].error, inflate.INFLATE_ERROR)


def test_a_reader_that_stops_early_stops_the_thread(tmp_path: Path) -> None:
    path = tmp_path / "big.gz"
    path.write_bytes(gzip.compress(os.urandom(200_000)))
    before = inflating()
    reader = blocks(path)
    next(reader)
    reader.close()  # what closing the cutter does
    assert inflating() == before
