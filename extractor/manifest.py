"""The manifest of a published dump file: its version and, per record id, a digest of the
record's raw XML bytes, kept in the state folder for the next month's delta.

One file per type, ``<type>.manifest``: a header (magic, then the metadata as JSON) and
one fixed-width entry per record, sorted by id: the id as a big-endian unsigned 64-bit
integer (so the bytes sort as the ids do) and the record's 128-bit XXH3 digest. XXH3 is
not a cryptographic hash: it detects changes, it does not guard against someone crafting a
record whose digest equals its previous version's (``--full`` sends every record). Nothing
of it is held in memory but a block being read: 19.3 M release ids make a 463 MB file.

A new manifest is written to a temporary file beside the old one and only replaces it
(fsync, ``os.replace``, fsync of the folder) when :meth:`ManifestWriter.commit` is
called, after the publish it describes is confirmed; a failed or interrupted publish
leaves the previous manifest as it was.
"""

from __future__ import annotations

import bisect
import contextlib
import heapq
import os
import struct
import tempfile
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import orjson
import xxhash

from common.records import NORMALISER_VERSION, DataType

MAGIC = b"discogs-manifest 1\n"
ENTRY = struct.Struct(">Q16s")
DIGEST = "xxh3-128"  # in the header: a manifest of other digests is not compared
_LENGTH = struct.Struct(">I")
_BLOCK = 8192  # entries read at a time
_PAGE = 256  # entries read for one lookup out of id order
_RUN = 1 << 20  # entries sorted in memory at a time when a dump was out of id order


class ManifestError(Exception):
    """A manifest file that cannot be read (not one, or cut short)."""


def digest(record: bytes | memoryview) -> bytes:
    return xxhash.xxh3_128_digest(record)


def manifest_path(state_dir: Path, data_type: DataType) -> Path:
    return state_dir / f"{data_type.value}.manifest"


@dataclass(frozen=True, slots=True)
class ManifestInfo:
    data_type: DataType
    version: str
    normaliser: int
    digest: str
    count: int
    offset: int  # where the entries begin in the file


def read_info(path: Path) -> ManifestInfo | None:
    """The manifest's header, or ``None`` when there is no such file."""
    try:
        with path.open("rb") as f:
            return _info(f, path)
    except FileNotFoundError:
        return None


def _info(f: IO[bytes], path: Path) -> ManifestInfo:
    head = f.read(len(MAGIC) + _LENGTH.size)
    if len(head) < len(MAGIC) + _LENGTH.size or not head.startswith(MAGIC):
        raise ManifestError(f"{path}: not a manifest file")
    (length,) = _LENGTH.unpack_from(head, len(MAGIC))
    try:
        meta = orjson.loads(f.read(length))
        offset = len(head) + length
        entries, rest = divmod(os.fstat(f.fileno()).st_size - offset, ENTRY.size)
        if rest:
            raise ValueError("cut short")
        return ManifestInfo(
            DataType(meta["data_type"]),
            str(meta["version"]),
            int(meta["normaliser"]),
            str(meta["digest"]),
            entries,
            offset,
        )
    except (ValueError, KeyError, TypeError) as e:
        raise ManifestError(f"{path}: unreadable manifest ({e})") from e


def _header(data_type: DataType, version: str) -> bytes:
    meta = orjson.dumps(
        {
            "data_type": data_type.value,
            "version": version,
            "normaliser": NORMALISER_VERSION,
            "digest": DIGEST,
        }
    )
    return MAGIC + _LENGTH.pack(len(meta)) + meta


class ManifestReader:
    """Lookups in an old manifest, cheap when asked in id order (a merge with the file),
    a binary search otherwise; remembers which entries were found, so that what was not
    (:meth:`unseen`) are the ids the new dump no longer holds."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("rb")
        try:
            self.info = _info(self._file, path)
        except BaseException:
            self._file.close()
            raise
        self._seen = bytearray(self.info.count)
        self._block = b""
        self._start = 0  # index of the block's first entry
        self._next = 0  # index of the next entry of the cursor
        self._prev = -1  # id of the entry before the cursor
        self._pages: array[int] | None = None  # built at the first lookup out of order

    def close(self) -> None:
        self._file.close()

    def find(self, record_id: int) -> bytes | None:
        """The digest stored for ``record_id`` (marking it found), or ``None``."""
        if record_id <= self._prev:  # asked out of id order
            return self._search(record_id)
        while self._next < self.info.count:
            ident, stored = self._entry(self._next)
            if ident >= record_id:
                if ident > record_id:
                    return None
                self._seen[self._next] = 1
                self._prev, self._next = ident, self._next + 1
                return stored
            self._prev, self._next = ident, self._next + 1
        return None

    def unseen(self) -> Iterator[int]:
        """The ids of the entries never found, in id order."""
        index = self._seen.find(0)
        while index >= 0:
            yield self._entry(index)[0]
            index = self._seen.find(0, index + 1)

    def _entry(self, index: int) -> tuple[int, bytes]:
        offset = (index - self._start) * ENTRY.size
        if not 0 <= offset < len(self._block):
            self._start = index
            self._block = os.pread(
                self._file.fileno(), _BLOCK * ENTRY.size, self.info.offset + index * ENTRY.size
            )
            offset = 0
        ident, stored = ENTRY.unpack_from(self._block, offset)
        return ident, stored

    def _search(self, record_id: int) -> bytes | None:
        """A lookup out of id order: the page that may hold it (from an index of each
        page's first id, read once), then a binary search in that page."""
        if self._pages is None:
            self._pages = self._page_index()
        page = bisect.bisect_right(self._pages, record_id) - 1
        if page < 0:
            return None
        first = page * _PAGE
        data = os.pread(
            self._file.fileno(), _PAGE * ENTRY.size, self.info.offset + first * ENTRY.size
        )
        low, high = 0, len(data) // ENTRY.size
        while low < high:
            middle = (low + high) // 2
            ident, stored = ENTRY.unpack_from(data, middle * ENTRY.size)
            if ident == record_id:
                self._seen[first + middle] = 1
                return stored  # type: ignore[no-any-return]
            if ident < record_id:
                low = middle + 1
            else:
                high = middle
        return None

    def _page_index(self) -> array[int]:
        pages: array[int] = array("Q")
        step = _PAGE * ENTRY.size
        position, end = self.info.offset, self.info.offset + self.info.count * ENTRY.size
        while position < end:
            data = os.pread(self._file.fileno(), min(step * 4096, end - position), position)
            pages.extend(int.from_bytes(data[k : k + 8]) for k in range(0, len(data), step))
            position += len(data)
        return pages


class ManifestWriter:
    """A new manifest, in a temporary file of the state folder until :meth:`commit`."""

    def __init__(self, state_dir: Path, data_type: DataType, version: str) -> None:
        self.path = manifest_path(state_dir, data_type)
        self._header = _header(data_type, version)
        fd, name = tempfile.mkstemp(dir=state_dir, prefix=f".{self.path.name}.", suffix=".tmp")
        self._tmp = Path(name)
        self._file = os.fdopen(fd, "wb", buffering=1 << 20)
        self._last = -1
        self.sorted = True
        self.count = 0
        self._done = False

    def add(self, record_id: int, record_digest: bytes) -> None:
        if record_id <= self._last:
            self.sorted = False
        self._last = record_id
        self._file.write(ENTRY.pack(record_id, record_digest))
        self.count += 1

    def commit(self) -> None:
        """Make this the manifest of the type: durable, then atomically in place."""
        if self._done:
            raise RuntimeError("manifest already committed or discarded")
        self._file.close()
        if not self.sorted:
            self._sort()
        final = self._tmp.with_suffix(".final")
        with final.open("wb") as out, self._tmp.open("rb") as entries:
            out.write(self._header)
            while block := entries.read(1 << 20):
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
        os.replace(final, self.path)
        self._tmp.unlink()
        _fsync_dir(self.path.parent)
        self._done = True

    def discard(self) -> None:
        """Drop the new manifest (idempotent; a committed one stays)."""
        if self._done:
            return
        self._done = True
        self._file.close()
        for path in (self._tmp, self._tmp.with_suffix(".final")):
            path.unlink(missing_ok=True)

    def _sort(self) -> None:
        """Sort the entries by id (a dump out of id order), the last of a repeated id kept:
        in runs that fit in memory, then merged."""
        runs: list[Path] = []
        with self._tmp.open("rb") as source:
            while data := source.read(_RUN * ENTRY.size):
                entries = [data[i : i + ENTRY.size] for i in range(0, len(data), ENTRY.size)]
                entries.sort(key=lambda e: e[:8])  # stable: a repeated id keeps its order
                run = self._tmp.with_suffix(f".run{len(runs)}")
                run.write_bytes(b"".join(entries))
                runs.append(run)
        with contextlib.ExitStack() as stack:
            files = [stack.enter_context(r.open("rb")) for r in runs]
            streams = [_entries(f) for f in files]
            with self._tmp.open("wb") as out:
                previous = b""
                for entry in heapq.merge(*streams, key=lambda e: e[:8]):
                    if previous and previous[:8] != entry[:8]:
                        out.write(previous)
                    previous = entry
                out.write(previous)
        for run in runs:
            run.unlink()


def _entries(f: IO[bytes]) -> Iterator[bytes]:
    while entry := f.read(ENTRY.size):
        yield entry


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
