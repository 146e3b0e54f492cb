"""Version B of a dump derived from version A: a share of records changed, added, removed.

Per type, of A's ``n`` records (in file order): every ``1/changed``-th gets its title
(releases, masters) or name (artists, labels) prefixed, so its normalised data changes;
every ``1/removed``-th (a different phase) is left out; and ``added * n`` copies of
records spread over the file are appended with new ids above A's highest. Everything
else is byte for byte A's. Used by the delta tests and ``make bench-delta``.
Usage: python -m bench.dumpdelta --source DIR --dest DIR --version YYYYMMDD
"""

from __future__ import annotations

import argparse
import gzip
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from common.records import DataType
from extractor.cutting import cut
from extractor.delta import record_id
from extractor.dumpfile import RECORD_TAG, DumpError, DumpFile

_CHANGE = {
    DataType.RELEASES: (b"<title>", b"<title>B "),
    DataType.MASTERS: (b"<title>", b"<title>B "),
    DataType.ARTISTS: (b"<name>", b"<name>B "),
    DataType.LABELS: (b"<name>", b"<name>B "),
}
_OWN_ID = {
    DataType.RELEASES: re.compile(rb'\A(<release\s[^>]*?\bid=")[0-9]+'),
    DataType.MASTERS: re.compile(rb'\A(<master\s[^>]*?\bid=")[0-9]+'),
    DataType.ARTISTS: re.compile(rb"(<id>)[0-9]+"),
    DataType.LABELS: re.compile(rb"(<id>)[0-9]+"),
}


@dataclass
class Changes:
    """The ids (as strings) B changed, added and removed against A, for one type."""

    changed: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Shares:
    changed: float = 0.01
    added: float = 0.005
    removed: float = 0.005


def records(dump: DumpFile) -> Iterator[tuple[int, bytes]]:
    """Each record of ``dump``: its id and its bytes."""
    for chunk in cut(dump, max_records=1000, max_bytes=1 << 22):
        for start, end in chunk.spans:
            ident = record_id(dump.data_type, chunk.blob, start, end)
            if ident is None:
                raise DumpError(f"{dump.path}: a record without an id")
            yield ident, chunk.blob[start:end]


def derive_file(dump: DumpFile, dest: Path, version: str, shares: Shares) -> Changes:
    """Write B of one file into ``dest``; return what differs from A."""
    data_type = dump.data_type
    every_changed = max(1, round(1 / shares.changed)) if shares.changed else 0
    every_removed = max(1, round(1 / shares.removed)) if shares.removed else 0
    old, new = _CHANGE[data_type]
    changes, copies, top, n = Changes(), [], 0, 0
    path = dest / f"discogs_{version}_{data_type.value}.xml.gz"
    tmp = path.with_suffix(".part")
    root = RECORD_TAG[data_type].encode() + b"s"
    with gzip.open(tmp, "wb", compresslevel=1) as out:
        out.write(b'<?xml version="1.0" encoding="UTF-8"?>\n<%s>\n' % root)
        for index, (ident, original) in enumerate(records(dump)):
            record = original
            n, top = n + 1, max(top, ident)
            if every_removed and index % every_removed == every_removed // 3:
                changes.removed.append(str(ident))
                continue
            if every_changed and index % every_changed == every_changed // 2 and old in record:
                record = record.replace(old, new, 1)
                changes.changed.append(str(ident))
            if len(copies) < 1000:  # candidates for the added records
                copies.append(record)
            out.write(record + b"\n")
        for k in range(round(n * shares.added)):
            ident = top + 1 + k
            template = copies[(k * 37) % len(copies)]
            out.write(_OWN_ID[data_type].sub(rb"\g<1>%d" % ident, template, count=1) + b"\n")
            changes.added.append(str(ident))
        out.write(b"</%s>\n" % root)
    tmp.replace(path)
    return changes


def derive(
    source: Path, dest: Path, version: str, shares: Shares | None = None
) -> dict[DataType, Changes]:
    """Version ``version`` of every ``discogs_*`` dump in ``source``, written into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    out = {}
    for path in sorted(source.glob("discogs_*.xml.gz")):
        dump = DumpFile.from_path(path)
        out[dump.data_type] = derive_file(dump, dest, version, shares or Shares())
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", type=Path, required=True)
    parser.add_argument("--dest", type=Path, required=True)
    parser.add_argument("--version", required=True)
    args = parser.parse_args()
    for data_type, c in derive(args.source, args.dest, args.version).items():
        sys.stdout.write(
            f"{data_type.value}: {len(c.changed)} changed, {len(c.added)} added, "
            f"{len(c.removed)} removed\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
