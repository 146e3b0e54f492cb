"""Cutting a dump's XML stream into whole records, as bytes, without parsing them.

The reader of a file decompresses it (a few blocks ahead, :mod:`extractor.inflate`) and
finds where each record (a child of the root, e.g. ``<release ...>...</release>``) begins
and ends by looking only at that one tag name, counting its nesting (labels hold
``<sublabels><label>`` of their own). It searches for the name itself, a literal the
regular expression engine skips to in C, and then checks for the ``<`` or ``</`` before
it; so one reader keeps many parsing workers busy. The records go out in chunks
(:class:`RawChunk`): one bytes object holding consecutive records and the spans of each,
cheap to send to a worker process.

What lies outside records is checked: the prolog and the root's start tag before the
first, whitespace between two, the root's end tag after the last. Anything else, a record
the file ends inside, or a gzip stream that breaks is a :class:`DumpError` naming the file,
the position and how many records came before it; the records before it are handed out
first. Comments and CDATA sections are not expected in the dumps (they have none): a
record tag inside one would mis-cut the stream, which the workers' parser then reports.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field

from extractor.dumpfile import RECORD_TAG, DumpError, DumpFile
from extractor.inflate import BROKEN, blocks

_LT, _SLASH = ord("<"), ord("/")
_ENCODING = re.compile(rb"""\A\s*<\?xml[^>]*\bencoding\s*=\s*["']([^"']+)["']""")


@dataclass(frozen=True, slots=True)
class RawChunk:
    """Consecutive records of one file: ``blob[s:e]`` for each ``(s, e)`` of ``spans``.

    ``first`` is the number of the first record in the file (from 1); ``line`` and
    ``column`` (from 1) where ``blob`` begins in the file; ``fraction`` how much of the
    (compressed) file has been read. Records picked out of several chunks for a delta
    carry their own place in the file in ``origins``.
    """

    blob: bytes
    spans: list[tuple[int, int]]
    first: int
    line: int
    column: int
    fraction: float = 0.0
    # Per record, its number, line and column in the file, when the records are not
    # consecutive (a delta's chosen records, :mod:`extractor.delta`).
    origins: list[tuple[int, int, int]] | None = None

    def origin(self, index: int) -> tuple[int, int, int]:
        """The number (from 1), line and column in the file of record ``index``."""
        if self.origins is not None:
            return self.origins[index]
        return (self.first + index, *self.position(self.spans[index][0]))

    def position(self, offset: int) -> tuple[int, int]:
        """Line and column in the file of ``blob[offset]``."""
        return advance(self.line, self.column, self.blob, offset)


def advance(line: int, column: int, data: bytes | bytearray, offset: int) -> tuple[int, int]:
    """The line and column of ``data[offset]`` when ``data[0]`` is at ``line``, ``column``."""
    newlines = data.count(b"\n", 0, offset)
    if not newlines:
        return line, column + offset
    return line + newlines, offset - data.rfind(b"\n", 0, offset)


@dataclass(slots=True)
class _Cut:
    """The cutter's state: the buffer and where in the file it begins."""

    buf: bytearray = field(default_factory=bytearray)
    line: int = 1
    column: int = 1
    scan: int = 0  # where the next tag search starts
    depth: int = 0  # nesting of the record tag at ``scan``
    start: int = -1  # where the record being cut began (-1: between records)
    spans: list[tuple[int, int]] = field(default_factory=list)
    seen_root: bool = False
    records: int = 0  # records cut so far (the current chunk's included)

    def drop(self, upto: int) -> None:
        """Forget ``buf[:upto]`` (handed out or checked), keeping positions right."""
        self.line, self.column = advance(self.line, self.column, self.buf, upto)
        del self.buf[:upto]
        self.scan -= upto
        if self.start >= 0:
            self.start -= upto


def cut(dump: DumpFile, *, max_records: int, max_bytes: int) -> Generator[RawChunk, None, None]:
    """Every record of ``dump`` in chunks of at most ``max_records`` records, and closed once
    they pass ``max_bytes``; raises :class:`DumpError` where the file breaks."""
    size = dump.path.stat().st_size
    cutter = _Cutter(dump, max_records, max_bytes)
    for block in blocks(dump.path):
        fraction = min(block.position / size, 1.0) if size else 1.0
        if block.error is not None:
            if not isinstance(block.error, BROKEN):
                raise block.error
            yield from cutter.partial(fraction)
            raise DumpError(
                f"{dump.path}: truncated or corrupt gzip at compressed byte {block.position} "
                f"after {cutter.state.records} records: {block.error}"
            ) from block.error
        yield from cutter.feed(block.data, fraction)


@dataclass(frozen=True, slots=True)
class _Patterns:
    """The tags of one record type's file, compiled once per file."""

    root: bytes  # the root element's name, ``labels`` for ``label``
    # A start, end or empty tag of the record's name from the name on (the ``<`` or ``</``
    # before it is checked after): a pattern that begins with a literal is searched for
    # in C, where one that begins with ``<`` stops at every tag of the record.
    name: re.Pattern[bytes]
    prolog: re.Pattern[bytes]  # what may come before the first record
    empty: re.Pattern[bytes]  # a whole file with no record
    ending: re.Pattern[bytes]  # what may follow the last record

    @classmethod
    def of(cls, record_tag: str) -> _Patterns:
        tag = record_tag.encode()
        root = tag + b"s"
        # A byte order mark, the XML declaration, comments and a document type may come first.
        head = (
            rb"\A(?:\xef\xbb\xbf)?\s*(?:<\?xml[^<>]*\?>)?(?:\s*(?:<!--.*?-->|<!DOCTYPE[^<>]*>))*\s*"
        )
        opening, closing = rb"<" + root + rb"(?:\s[^<>]*?)?", rb"</" + root + rb"\s*>"
        return cls(
            root=root,
            name=re.compile(tag + rb"(?:\s[^<>]*?)?(/?)>"),
            prolog=re.compile(head + opening + rb">\s*\Z", re.S),
            empty=re.compile(head + opening + rb"(?:/>|>\s*" + closing + rb")\s*\Z", re.S),
            ending=re.compile(rb"\A\s*" + closing + rb"\s*\Z"),
        )


class _Cutter:
    def __init__(self, dump: DumpFile, max_records: int, max_bytes: int) -> None:
        self.dump = dump
        self.state = _Cut()
        self.max_records = max(1, max_records)
        self.max_bytes = max(1, max_bytes)
        self.patterns = _Patterns.of(RECORD_TAG[dump.data_type])
        self.root = self.patterns.root

    def feed(self, block: bytes, fraction: float) -> Iterator[RawChunk]:
        """Chunks completed by ``block``; an empty block is the end of the file."""
        s = self.state
        if not block:
            yield from self.partial(fraction)
            self._finish()
            return
        s.buf += block
        try:
            yield from self._cut(fraction)
        except DumpError:
            yield from self.partial(fraction)  # the records before the break go first
            raise

    def _cut(self, fraction: float) -> Iterator[RawChunk]:
        s, search = self.state, self.patterns.name.search
        while (m := search(s.buf, s.scan)) is not None:
            s.scan, at, empty = m.end(), m.start(), m.end(1) > m.start(1)
            if at >= 1 and s.buf[at - 1] == _LT:
                self._tag(at - 1, s.scan, False, empty)
            elif at >= 2 and s.buf[at - 1] == _SLASH and s.buf[at - 2] == _LT:
                self._tag(at - 2, s.scan, True, empty)
            else:  # the name in text or in an attribute's value
                continue
            if len(s.spans) >= self.max_records or (s.spans and s.spans[-1][1] >= self.max_bytes):
                yield self._take(fraction)
        last = s.buf.rfind(b"<", s.scan)  # a tag the next block completes starts there
        s.scan = max(s.scan, last if last >= 0 else len(s.buf))
        if not s.spans and s.start < 0 and s.seen_root:  # between records: keep the buffer small
            if s.buf[: s.scan].strip():
                self._fail(0, "text between records")
            s.drop(s.scan)

    def _tag(self, start: int, end: int, closing: bool, empty: bool) -> None:
        """One start, end or empty tag of the record's name."""
        s = self.state
        if s.depth == 0:
            if closing:
                self._fail(start, f"</{self.root[:-1].decode()}> outside a record")
            shift = self._between(start)
            s.start = start - shift
            if empty:
                self._record(end - shift)
            else:
                s.depth = 1
        elif closing:
            s.depth -= 1
            if s.depth == 0:
                self._record(end)
        elif not empty:
            s.depth += 1

    def partial(self, fraction: float) -> Iterator[RawChunk]:
        if self.state.spans:
            yield self._take(fraction)

    def _record(self, end: int) -> None:
        s = self.state
        s.spans.append((s.start, end))
        s.start = -1
        s.records += 1

    def _between(self, start: int) -> int:
        """Check what lies before the record starting at ``start``; return how many bytes
        of the buffer that dropped (the prolog)."""
        s = self.state
        before = s.buf[s.spans[-1][1] if s.spans else 0 : start]
        if s.seen_root:
            if before.strip():
                self._fail(start - len(before), "text between records")
            return 0
        if self.patterns.prolog.match(before) is None:
            self._fail(0, f"no <{self.root.decode()}> root element before the first record")
        encoding = _ENCODING.match(before)
        if encoding and encoding.group(1).lower().replace(b"_", b"-") not in (b"utf-8", b"utf8"):
            self._fail(0, f"encoding {encoding.group(1).decode()!r} (the dumps are UTF-8)")
        s.seen_root = True
        s.drop(start)
        return start

    def _take(self, fraction: float) -> RawChunk:
        s = self.state
        end = s.spans[-1][1]
        begin = s.spans[0][0]
        line, column = advance(s.line, s.column, s.buf, begin)
        chunk = RawChunk(
            bytes(s.buf[begin:end]),
            [(a - begin, b - begin) for a, b in s.spans],
            s.records - len(s.spans) + 1,
            line,
            column,
            fraction,
        )
        s.spans = []
        s.drop(end)
        return chunk

    def _finish(self) -> None:
        s = self.state
        if s.start >= 0:
            self._fail(s.start, f"the file ends inside record #{s.records + 1}")
        if not s.seen_root:
            if self.patterns.empty.match(s.buf) is None:
                self._fail(0, f"no <{self.root.decode()}> root element")
            return
        if self.patterns.ending.match(s.buf) is None:
            self._fail(0, f"the file does not end with </{self.root.decode()}>")

    def _fail(self, offset: int, what: str) -> None:
        s = self.state
        line, column = advance(s.line, s.column, s.buf, offset)
        raise DumpError(
            f"{self.dump.path}: malformed XML at line {line}, column {column} "
            f"after {s.records} records: {what}"
        )
