"""A chunk's records against the old manifest, before any parsing: the part of a delta
that runs in the worker processes.

Each record's id is read off its bytes (the ``id`` attribute of a release or master, the
first ``<id>`` element of an artist or label) and its raw bytes digested; the old entries
of the chunk's id range are read from the manifest file in one piece and each record is
added (an id they lack), changed (another digest) or unchanged. What goes back to the
main process is small (:class:`Picked`): the new manifest's entries, which old entries
were found, which records to parse and where each of those is in the file. So the reader
thread only inflates and cuts, and the digests use the other core.
"""

from __future__ import annotations

import operator
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from common.records import DataType
from extractor.cutting import RawChunk
from extractor.manifest import ENTRY, digest

# The record's own id, read without parsing; a record where it is not found is sent.
_ID = {
    DataType.RELEASES: re.compile(rb'<release\s[^>]*?\bid="\s*([0-9]+)\s*"'),
    DataType.MASTERS: re.compile(rb'<master\s[^>]*?\bid="\s*([0-9]+)\s*"'),
    DataType.ARTISTS: re.compile(rb"<id>\s*([0-9]+)\s*</id>"),
    DataType.LABELS: re.compile(rb"<id>\s*([0-9]+)\s*</id>"),
}
_ATTRIBUTE = frozenset({DataType.RELEASES, DataType.MASTERS})
_SPREAD = 1024  # old entries read in one piece beyond 4 per record: else looked up one by one


def record_id(data_type: DataType, blob: bytes, start: int, end: int) -> int | None:
    pattern = _ID[data_type]
    m = (
        pattern.match(blob, start, end)
        if data_type in _ATTRIBUTE
        else pattern.search(blob, start, end)
    )
    return int(m.group(1)) if m is not None else None


@dataclass(frozen=True, slots=True)
class OldManifest:
    """Where a worker reads the old manifest; ``token`` names one publish's use of it."""

    path: Path
    offset: int
    count: int
    token: str


@dataclass(frozen=True, slots=True)
class PickJob:
    data_type: DataType
    chunk: RawChunk
    old: OldManifest | None  # None: every record is sent, only the entries are wanted


@dataclass(slots=True)
class Picked:
    """One chunk picked: ``entries`` for the new manifest (``last_id`` the last one's id,
    ``first_id`` the first's, ``ordered`` if ascending), the indexes of the old entries
    found, the records to send (``picked``, with their number, line and column)."""

    entries: bytes = b""
    first_id: int = -1
    last_id: int = -1
    ordered: bool = True
    found: list[int] = field(default_factory=list)
    picked: list[int] = field(default_factory=list)
    origins: list[tuple[int, int, int]] = field(default_factory=list)
    added: int = 0
    changed: int = 0
    unchanged: int = 0


def pick(job: PickJob) -> Picked:
    """Runs in a worker: the records of ``job.chunk`` to send and the manifest's entries."""
    chunk, data_type = job.chunk, job.data_type
    blob, view = chunk.blob, memoryview(chunk.blob)
    find = _ID[data_type].match if data_type in _ATTRIBUTE else _ID[data_type].search
    ids: list[int] = []
    digests: list[bytes] = []
    named: list[int] = []
    nameless: list[int] = []  # the parse worker will say what is wrong with them
    for index, (start, end) in enumerate(chunk.spans):
        if (m := find(blob, start, end)) is None:
            nameless.append(index)
            continue
        ids.append(int(m.group(1)))
        digests.append(digest(view[start:end]))
        named.append(index)
    out = Picked(b"".join(map(ENTRY.pack, ids, digests)))
    if ids:
        out.first_id, out.last_id = ids[0], ids[-1]
        out.ordered = all(map(operator.lt, ids, ids[1:]))
    if job.old is None:
        return out
    stored = _lookup(job.old).entries(ids, ordered=out.ordered)
    for ident, new, index in zip(ids, digests, named, strict=True):
        hit = stored.get(ident)
        if hit is None:
            out.added += 1
        elif hit[1] == new:
            out.unchanged += 1
            out.found.append(hit[0])
            continue
        else:
            out.changed += 1
            out.found.append(hit[0])
        out.picked.append(index)
    if nameless:
        out.picked = sorted(out.picked + nameless)
    out.origins = _origins(chunk, out.picked)
    return out


def _origins(chunk: RawChunk, picked: list[int]) -> list[tuple[int, int, int]]:
    """The number, line and column in the file of each record of ``picked`` (ascending)."""
    blob, out = chunk.blob, []
    line, column, at = chunk.line, chunk.column, 0
    for index in picked:
        start = chunk.spans[index][0]
        newlines = blob.count(b"\n", at, start)
        if newlines:
            line, column = line + newlines, start - blob.rfind(b"\n", at, start)
        else:
            column += start - at
        at = start
        out.append((chunk.first + index, line, column))
    return out


class _Lookup:
    """The old manifest as one worker reads it: the entries of an id range, found by a
    binary search over the file, read in one piece."""

    def __init__(self, old: OldManifest) -> None:
        self.old = old
        self._fd = os.open(old.path, os.O_RDONLY)

    def close(self) -> None:
        os.close(self._fd)

    def entries(self, ids: list[int], *, ordered: bool) -> dict[int, tuple[int, bytes]]:
        """Per id of ``ids`` in the manifest: its entry's index and digest."""
        if not ids:
            return {}
        low, high = (ids[0], ids[-1]) if ordered else (min(ids), max(ids))
        first = self._bisect(low)
        last = self._bisect(high + 1)
        if last - first > 4 * len(ids) + _SPREAD:  # ids far apart: one at a time
            found = {}
            for ident in ids:
                index = self._bisect(ident)
                if index < self.old.count and self._id(index) == ident:
                    found[ident] = (index, self._read(index, index + 1)[8:])
            return found
        data = self._read(first, last)
        return {
            ident: (index, stored)
            for index, (ident, stored) in enumerate(ENTRY.iter_unpack(data), first)
        }

    def _bisect(self, ident: int) -> int:
        """The index of the first entry whose id is ``ident`` or more."""
        low, high = 0, self.old.count
        while low < high:
            middle = (low + high) // 2
            if self._id(middle) < ident:
                low = middle + 1
            else:
                high = middle
        return low

    def _id(self, index: int) -> int:
        return int.from_bytes(self._read(index, index + 1)[:8])

    def _read(self, first: int, last: int) -> bytes:
        size = ENTRY.size
        return os.pread(self._fd, (last - first) * size, self.old.offset + first * size)


_open: list[_Lookup] = []  # this process's lookup of the manifest in use (one at a time)


def _lookup(old: OldManifest) -> _Lookup:
    if _open and _open[0].old == old:
        return _open[0]
    while _open:
        _open.pop().close()
    _open.append(_Lookup(old))
    return _open[0]
