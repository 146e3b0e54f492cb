"""Records of a dump as Python objects: each cut record parsed, in the raw and normal shapes.

:mod:`extractor.cutting` cuts the stream into records (bytes); here each is parsed on its
own into the raw (xmltodict-style) shape of the wire contract (:mod:`extractor.rawshape`:
by quick-xml, or by the standard library's ElementTree where only expat reads a record
right, and to say where XML is malformed), then goes through
:func:`common.normalise.normalise`, the same code the consumers run on raw messages, so
both paths agree by construction. The
extractor's workers call :func:`parse_chunk`; :func:`iter_raw` and :func:`iter_records`
read a whole file in one thread (tests, tools).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any
from xml.etree import ElementTree

from common.normalise import normalise
from common.records import InvalidRecord, Record
from extractor.cutting import RawChunk, cut
from extractor.dumpfile import RECORD_TAG, DumpError, DumpFile
from extractor.rawshape import element_to_raw, quick_raw

__all__ = ["RECORD_TAG", "DumpError", "DumpFile", "iter_raw", "iter_records", "parse_chunk"]

_CHUNK_RECORDS, _CHUNK_BYTES = 64, 1 << 20  # for the one-thread readers


def parse_record(file: str, chunk: RawChunk, index: int) -> dict[str, Any]:
    """Record ``index`` of ``chunk`` in the raw shape; malformed XML, or a record nested
    deeper than any Discogs record, is a DumpError."""
    start, end = chunk.spans[index]
    blob = chunk.blob[start:end]
    try:
        raw = quick_raw(blob)
        if raw is None:  # a record quick-xml does not read as expat does, or cannot read
            raw = element_to_raw(_expat_element(file, chunk, index, blob))
    except InvalidRecord as e:
        raise _invalid(file, chunk, index, e) from e
    return raw if isinstance(raw, dict) else {}


def _invalid(file: str, chunk: RawChunk, index: int, error: InvalidRecord) -> DumpError:
    return DumpError(f"{file}: record #{chunk.origin(index)[0]} is invalid: {error}")


def _expat_element(file: str, chunk: RawChunk, index: int, blob: bytes) -> ElementTree.Element:
    try:
        # The cut record starts at its own element, where no DOCTYPE may stand: it can
        # declare no entity to expand and name no external one (the XML attacks of S314).
        return ElementTree.fromstring(blob)  # noqa: S314
    except ElementTree.ParseError as e:
        number, line, column = chunk.origin(index)
        at_line, at_column = e.position  # expat counts columns from 0
        if at_line > 1:
            line, column = line + at_line - 1, at_column + 1
        else:
            column += at_column + 1
        reason = str(e).split(":", 1)[0]
        raise DumpError(
            f"{file}: malformed XML at line {line}, column {column} "
            f"after {number - 1} records: {reason}"
        ) from e


def parse_chunk(dump: DumpFile, chunk: RawChunk) -> Generator[Record, None, None]:
    """Each record of ``chunk`` normalised, in order; stops with a DumpError at a bad one."""
    for index in range(len(chunk.spans)):
        raw = parse_record(str(dump.path), chunk, index)
        try:
            yield normalise(dump.data_type, raw)
        except InvalidRecord as e:
            raise _invalid(str(dump.path), chunk, index, e) from e


def iter_raw(dump: DumpFile) -> Generator[dict[str, Any], None, None]:
    """Yield each record of ``dump`` in the raw shape; raise :class:`DumpError` on bad input."""
    for chunk in cut(dump, max_records=_CHUNK_RECORDS, max_bytes=_CHUNK_BYTES):
        for index in range(len(chunk.spans)):
            yield parse_record(str(dump.path), chunk, index)


def iter_records(dump: DumpFile) -> Generator[Record, None, None]:
    """Yield each record of ``dump`` normalised; a record that cannot be is a DumpError."""
    for chunk in cut(dump, max_records=_CHUNK_RECORDS, max_bytes=_CHUNK_BYTES):
        yield from parse_chunk(dump, chunk)
