"""Discogs records: the data types and the normalised record (``Record``).

The normaliser that builds records from either wire shape is :mod:`common.normalise`.
Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson

_YEAR_RE = re.compile(r"\s*([0-9]{4})")

# The version of common.normalise's output: bump it whenever a change there alters the
# normalised record of some input, so that records stored by the older normaliser are
# rewritten on the next load even though their sha256 is the same. 1 is the normaliser
# before this gate existed (it dropped empty list items); its stored hash is the bare sha256.
NORMALISER_VERSION = 2


class DataType(StrEnum):
    ARTISTS = "artists"
    LABELS = "labels"
    MASTERS = "masters"
    RELEASES = "releases"


class InvalidRecord(ValueError):
    """A record that can never be stored; the message says why."""


@dataclass(frozen=True, slots=True)
class Record:
    """One normalised Discogs record: ``data`` holds every field, ``id`` included."""

    id: str
    sha256: str
    data: dict[str, Any]
    # The dump version (YYYYMMDD) the producer read this record from, when it says so.
    version: str | None = None
    # ``data`` as canonical JSON, kept from normalisation (where the hash is taken) so a
    # writer storing the document does not serialise it again. None when not known.
    encoded: bytes | None = field(default=None, compare=False, repr=False)

    @property
    def stored_hash(self) -> str:
        """What the stores keep and compare to skip an unchanged record: the sha256 and the
        normaliser version that built ``data`` (see docs/wire-format.md, "Hash gate")."""
        return stored_hash(self.sha256, NORMALISER_VERSION)

    def with_data(self, data: dict[str, Any]) -> Record:
        """This record with other ``data`` (a projection of it: the same id, hash, JSON)."""
        return Record(self.id, self.sha256, data, self.version, self.encoded)

    def __reduce__(self) -> tuple[type[Record], tuple[Any, ...]]:
        # Decode workers pickle records by the hundred thousand a second: the constructor
        # and its arguments pickle several times faster than a slots dataclass's state.
        return (Record, (self.id, self.sha256, self.data, self.version, self.encoded))


def stored_hash(sha256: str, normaliser_version: int) -> str:
    """``sha256`` combined with the normaliser version (version 1: ``sha256`` alone)."""
    return sha256 if normaliser_version == 1 else f"{sha256}+n{normaliser_version}"


def canonical_json(data: dict[str, Any]) -> bytes:
    """A stable serialisation (sorted keys) used for hashing and comparisons."""
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)


def release_year(released: object) -> int | None:
    """The year of a free-form ``released`` value (``1999-03-00``, ``1999``), if any."""
    if isinstance(released, int) and not isinstance(released, bool):
        return released if 1000 <= released <= 9999 else None
    if isinstance(released, str) and (m := _YEAR_RE.match(released)):
        year = int(m.group(1))
        return year if year >= 1000 else None
    return None
