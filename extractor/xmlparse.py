"""Streaming reader of the Discogs XML dumps: one normalised record at a time.

Memory stays flat whatever the file size: lxml's ``iterparse`` hands over each record
element when it closes, and the element and its finished siblings are freed at once.
Each element becomes the raw (xmltodict-style) shape of the wire contract and goes
through :func:`common.normalise.normalise`, the same code the consumers run on raw
messages, so both paths agree by construction.

Thread affinity: advance (and close) one ``iter_raw``/``iter_records`` generator from one
thread for its whole life. lxml's documents belong to the thread that parsed them; resuming
an ``iterparse`` on another thread (e.g. successive ``asyncio.to_thread`` calls landing on
different pool threads) crashed the process with ``free(): invalid pointer``.
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from lxml import etree

from common.normalise import normalise
from common.records import DataType, InvalidRecord, Record

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


class Progress:
    """Tracks how far into the (compressed) file the parser has read.

    Read ``fraction`` from the thread that runs the parser (the file object is not shared
    safely across threads).
    """

    def __init__(self, raw: IO[bytes], size: int) -> None:
        self.raw = raw
        self.size = size
        self._last = 0.0

    @property
    def fraction(self) -> float:
        """Share of the file's bytes read so far (the last value once the file is closed)."""
        return self.sample()

    def sample(self) -> float:
        if not self.raw.closed:
            self._last = min(self.raw.tell() / self.size, 1.0) if self.size else 1.0
        return self._last


_Progress = Progress  # the name earlier callers used


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


def iter_raw(
    dump: DumpFile, progress: list[Progress] | None = None
) -> Generator[dict[str, Any], None, None]:
    """Yield each record of ``dump`` in the raw shape; raise :class:`DumpError` on bad input."""
    tag = _RECORD_TAG[dump.data_type]
    count = 0
    with dump.path.open("rb") as raw:
        tracker = Progress(raw, dump.path.stat().st_size)
        if progress is not None:
            progress.append(tracker)
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
            tracker.sample()  # the final position, readable after the file is closed
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


def iter_records(
    dump: DumpFile, progress: list[Progress] | None = None
) -> Generator[Record, None, None]:
    """Yield each record of ``dump`` normalised; a record that cannot be is a DumpError.

    ``progress``, if given, receives a :class:`Progress` once the file is open.
    """
    for index, raw in enumerate(iter_raw(dump, progress)):
        try:
            yield normalise(dump.data_type, raw)
        except InvalidRecord as e:
            raise DumpError(f"{dump.path}: record #{index + 1} is invalid: {e}") from e
