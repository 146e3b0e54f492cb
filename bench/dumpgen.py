"""A dump shaped like the real one, at a given percentage of its size, from the samples.

The real monthly dump holds about 10.2 M artists, 2.4 M labels, 2.6 M masters and 19.3 M
releases. At ``percent`` % each type gets that share of its count, made by copying the
type's 1,000 sample records as often as needed. Copy ``k`` shifts every id in the record,
its own and every reference (artists, labels, masters, releases, companies, aliases,
members, sublabels), by ``k * STRIDE``, so each copy is a disjoint id range that keeps the
samples' shape: the same record sizes and the same references among the copy's records.
Records are written in id order, gzip-compressed, as ``discogs_<VERSION>_<type>.xml.gz``.
Usage: python -m bench.dumpgen --percent 1 --dest DIR
"""

from __future__ import annotations

import argparse
import gzip
import re
import sys
from collections.abc import Iterator
from pathlib import Path

from bench.generate import SAMPLES
from common.records import DataType

VERSION = "20260101"
FULL_DUMP = {
    DataType.ARTISTS: 10_200_000,
    DataType.LABELS: 2_400_000,
    DataType.MASTERS: 2_600_000,
    DataType.RELEASES: 19_300_000,
}
STRIDE = 100_000_000  # above every id the samples hold or reference
_TAG = {t: t.value[:-1].encode() for t in DataType}
# Every id: attributes (release, label and alias ids), <id> elements, and the two fields
# that hold a bare id.
_ID = re.compile(rb'(\bid="|<id>|<main_release>|<master_id(?:\s[^>]*)?>)([0-9]+)(?=["<])')


def sample_records(data_type: DataType) -> list[bytes]:
    """The sample's records of ``data_type``, each its XML element as bytes."""
    raw = gzip.decompress((SAMPLES / f"discogs_20200806_{data_type.value}.xml.gz").read_bytes())
    tag = _TAG[data_type]
    start = re.compile(rb"<" + tag + rb"[\s>]")
    end = b"</" + tag + b">"
    records, pos = [], raw.index(b"<" + tag + b"s") + len(tag) + 2
    while (m := start.search(raw, pos)) is not None:
        depth, scan = 1, m.end()
        while depth:  # labels nest <label> elements (sublabels) inside a label
            nxt_open = start.search(raw, scan)
            nxt_close = raw.index(end, scan)
            if nxt_open is not None and nxt_open.start() < nxt_close:
                depth, scan = depth + 1, nxt_open.end()
            else:
                depth, scan = depth - 1, nxt_close + len(end)
        records.append(raw[m.start() : scan])
        pos = scan
    return records


class Template:
    """A record split around its ids, so that a shifted copy is one join."""

    def __init__(self, record: bytes) -> None:
        self.parts: list[bytes] = []
        self.ids: list[int] = []
        pos = 0
        for m in _ID.finditer(record):
            self.parts.append(record[pos : m.start(2)])
            self.ids.append(int(m.group(2)))
            pos = m.end(2)
        self.parts.append(record[pos:])
        if self.ids and max(self.ids) >= STRIDE:
            raise ValueError(f"an id of the samples is above the stride: {max(self.ids)}")

    def copy(self, shift: int) -> bytes:
        out = [self.parts[0]]
        for ident, part in zip(self.ids, self.parts[1:], strict=True):
            out.append(b"%d" % (ident + shift))
            out.append(part)
        return b"".join(out)


def counts(percent: float) -> dict[DataType, int]:
    return {t: max(1, round(n * percent / 100)) for t, n in FULL_DUMP.items()}


def records(data_type: DataType, n: int) -> Iterator[bytes]:
    """``n`` records: copy 0 of every sample record, then copy 1, and so on."""
    templates = [Template(r) for r in sample_records(data_type)]
    for i in range(n):
        copy, index = divmod(i, len(templates))
        yield templates[index].copy(copy * STRIDE)


def write(dest: Path, percent: float) -> dict[DataType, Path]:
    dest.mkdir(parents=True, exist_ok=True)
    paths = {}
    for data_type, n in counts(percent).items():
        path = dest / f"discogs_{VERSION}_{data_type.value}.xml.gz"
        tmp = path.with_suffix(".part")
        with gzip.open(tmp, "wb", compresslevel=1) as out:
            out.write(b'<?xml version="1.0" encoding="UTF-8"?>\n<%ss>\n' % _TAG[data_type])
            batch: list[bytes] = []
            for record in records(data_type, n):
                batch.append(record)
                if len(batch) >= 1000:
                    out.write(b"\n".join(batch) + b"\n")
                    batch = []
            out.write(b"\n".join(batch) + b"\n" if batch else b"")
            out.write(b"</%ss>\n" % _TAG[data_type])
        tmp.replace(path)
        paths[data_type] = path
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--percent", type=float, default=1.0)
    parser.add_argument("--dest", type=Path, required=True)
    args = parser.parse_args()
    for data_type, path in write(args.dest, args.percent).items():
        sys.stdout.write(f"{data_type.value}: {path} ({path.stat().st_size / 1e6:.1f} MB)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
