"""Records of a dump as Python objects: each cut record parsed, in the raw and normal shapes.

:mod:`extractor.cutting` cuts the stream into records (bytes); here each is parsed by lxml
on its own and becomes the raw (xmltodict-style) shape of the wire contract, then goes
through :func:`common.normalise.normalise`, the same code the consumers run on raw
messages, so both paths agree by construction. The extractor's workers call
:func:`parse_chunk`; :func:`iter_raw` and :func:`iter_records` read a whole file in one
thread (tests, tools).
"""

from __future__ import annotations

import threading
from collections.abc import Generator
from typing import Any

from lxml import etree

from common.normalise import normalise
from common.records import InvalidRecord, Record
from extractor.cutting import RawChunk, cut
from extractor.dumpfile import RECORD_TAG, DumpError, DumpFile

__all__ = ["RECORD_TAG", "DumpError", "DumpFile", "iter_raw", "iter_records", "parse_chunk"]

_CHUNK_RECORDS, _CHUNK_BYTES = 64, 1 << 20  # for the one-thread readers
_parsers = threading.local()  # an lxml parser is used by one thread only


def _parser() -> etree.XMLParser:
    parser: etree.XMLParser | None = getattr(_parsers, "parser", None)
    if parser is None:
        parser = etree.XMLParser(huge_tree=True, resolve_entities=False, no_network=True)
        _parsers.parser = parser
    return parser


def element_to_raw(el: Any) -> Any:
    """One XML element in the xmltodict convention: ``@attr``, ``#text``, lists for repeats."""
    children = list(el)
    if not children:
        text = el.text if el.text else None
        if not el.attrib:
            return text
        node: dict[str, Any] = {f"@{k}": v for k, v in el.attrib.items()}
        if text is not None:
            node["#text"] = text
        return node
    out: dict[str, Any] = {f"@{k}": v for k, v in el.attrib.items()}
    for child in children:
        if not isinstance(child.tag, str):  # comments, processing instructions
            continue
        value = element_to_raw(child)
        if child.tag in out:
            prev = out[child.tag]
            if isinstance(prev, list):
                prev.append(value)
            else:
                out[child.tag] = [prev, value]
        else:
            out[child.tag] = value
    return out


def parse_record(file: str, chunk: RawChunk, index: int) -> dict[str, Any]:
    """Record ``index`` of ``chunk`` in the raw shape; malformed XML is a DumpError."""
    start, end = chunk.spans[index]
    try:
        element = etree.fromstring(chunk.blob[start:end], _parser())
    except etree.XMLSyntaxError as e:
        number, line, column = chunk.origin(index)
        at_line, at_column = e.position
        if at_line > 1:
            line, column = line + at_line - 1, at_column
        else:
            column += at_column
        raise DumpError(
            f"{file}: malformed XML at line {line}, column {column} "
            f"after {number - 1} records: {e.msg}"
        ) from e
    raw = element_to_raw(element)
    return raw if isinstance(raw, dict) else {}


def parse_chunk(dump: DumpFile, chunk: RawChunk) -> Generator[Record, None, None]:
    """Each record of ``chunk`` normalised, in order; stops with a DumpError at a bad one."""
    for index in range(len(chunk.spans)):
        raw = parse_record(str(dump.path), chunk, index)
        try:
            yield normalise(dump.data_type, raw)
        except InvalidRecord as e:
            number = chunk.origin(index)[0]
            raise DumpError(f"{dump.path}: record #{number} is invalid: {e}") from e


def iter_raw(dump: DumpFile) -> Generator[dict[str, Any], None, None]:
    """Yield each record of ``dump`` in the raw shape; raise :class:`DumpError` on bad input."""
    for chunk in cut(dump, max_records=_CHUNK_RECORDS, max_bytes=_CHUNK_BYTES):
        for index in range(len(chunk.spans)):
            yield parse_record(str(dump.path), chunk, index)


def iter_records(dump: DumpFile) -> Generator[Record, None, None]:
    """Yield each record of ``dump`` normalised; a record that cannot be is a DumpError."""
    for chunk in cut(dump, max_records=_CHUNK_RECORDS, max_bytes=_CHUNK_BYTES):
        yield from parse_chunk(dump, chunk)
