"""A Discogs dump file: its path, data type and version, and the error of a broken one."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from common.records import DataType

_NAME_RE = re.compile(
    r"discogs_(?P<version>[0-9]{8})_(?P<type>artists|labels|masters|releases)\.xml(\.gz)?$"
)
# The element of one record, a child of the root (the root is this name plus "s").
RECORD_TAG = {
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
