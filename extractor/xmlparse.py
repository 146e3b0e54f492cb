"""Streaming reader of the Discogs XML dumps: one normalised record at a time.

Memory stays flat whatever the file size: lxml's ``iterparse`` hands over each record
element when it closes, and the element and its finished siblings are freed at once.
Each element becomes the raw (xmltodict-style) shape of the wire contract and goes
through :func:`common.records.normalise`, the same code the consumers run on raw
messages, so both paths agree by construction.
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from lxml import etree

from common.records import DataType, InvalidRecord, Record, normalise

_NAME_RE = re.compile(
    r"discogs_(?P<version>[0-9]{8})_(?P<type>artists|labels|masters|releases)\.xml(\.gz)?$"
)
_RECORD_TAG = {
    DataType.ARTISTS: "artist",
    DataType.LABELS: "label",
    DataType.MASTERS: "master",
    DataType.RELEASES: "release",
}


class DumpError(Exception):
    """A dump that cannot be read on; the message names the file and the position."""


@dataclass(frozen=True, slots=True)
class DumpFile:
    path: Path
    data_type: DataType
    version: str

    @classmethod
    def from_path(cls, path: Path) -> DumpFile:
        m = _NAME_RE.search(path.name)
        if m is None:
            raise DumpError(f"{path}: not a Discogs dump name (discogs_YYYYMMDD_<type>.xml[.gz])")
        return cls(path, DataType(m.group("type")), m.group("version"))


class _Progress:
    """Tracks how far into the (compressed) file the parser has read."""

    def __init__(self, raw: IO[bytes], size: int) -> None:
        self.raw = raw
        self.size = size

    @property
    def fraction(self) -> float:
        return min(self.raw.tell() / self.size, 1.0) if self.size else 1.0


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


def iter_raw(dump: DumpFile, progress: list[_Progress] | None = None) -> Iterator[dict[str, Any]]:
    """Yield each record of ``dump`` in the raw shape; raise :class:`DumpError` on bad input."""
    tag = _RECORD_TAG[dump.data_type]
    count = 0
    with dump.path.open("rb") as raw:
        if progress is not None:
            progress.append(_Progress(raw, dump.path.stat().st_size))
        stream: IO[bytes] = raw
        if dump.path.suffix == ".gz":
            stream = gzip.GzipFile(fileobj=raw)  # type: ignore[assignment]
        try:
            for _, el in etree.iterparse(stream, events=("end",), tag=tag, huge_tree=True):
                parent = el.getparent()
                if parent is None or parent.getparent() is not None:
                    continue  # a nested element of the same name (a label's sublabels)
                record = element_to_raw(el)
                el.clear(keep_tail=False)
                while el.getprevious() is not None:
                    del parent[0]
                count += 1
                yield record if isinstance(record, dict) else {}
        except etree.XMLSyntaxError as e:
            line, col = e.position
            raise DumpError(
                f"{dump.path}: malformed XML at line {line}, column {col} "
                f"after {count} records: {e.msg}"
            ) from e
        except (EOFError, zlib.error, gzip.BadGzipFile) as e:
            raise DumpError(
                f"{dump.path}: truncated or corrupt gzip at compressed byte {raw.tell()} "
                f"after {count} records: {e}"
            ) from e


def iter_records(dump: DumpFile) -> Iterator[Record]:
    """Yield each record of ``dump`` normalised; a record that cannot be is a DumpError."""
    for index, raw in enumerate(iter_raw(dump)):
        try:
            yield normalise(dump.data_type, raw)
        except InvalidRecord as e:
            raise DumpError(f"{dump.path}: record #{index + 1} is invalid: {e}") from e
