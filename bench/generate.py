"""Deterministic generator of realistic Discogs records, calibrated on the bundled samples.

Each synthetic record is a real sample record of the same type (chosen by a seeded RNG)
with a fresh id, its text fields varied, and every reference to another record remapped
into the id space of the generated set, so the graph gets realistic sharing (popular
artists and labels, common genres and styles). Sizes, track and credit counts, genres,
styles and text lengths therefore follow the samples' own distributions.
"""

from __future__ import annotations

import hashlib
import random
import string
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import orjson

from common.records import DataType, Record, canonical_json
from extractor.xmlparse import DumpFile, iter_records

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "samples"
# Referenced ids fall in a space this many times smaller than the records of that type:
# the skew gives a few very popular artists and labels, as in the real data.
_REF_FIELDS = {
    "artists": "artist",
    "extraartists": "artist",
    "labels": "label",
    "aliases": "artist",
    "members": "artist",
    "groups": "artist",
    "sublabels": "label",
}


@cache
def templates(data_type: DataType) -> list[Record]:
    path = SAMPLES / f"discogs_20200806_{data_type.value}.xml.gz"
    return list(iter_records(DumpFile.from_path(path)))


@cache
def _blobs(data_type: DataType) -> list[bytes]:
    return [orjson.dumps(r.data) for r in templates(data_type)]


def generate(
    data_type: DataType, n: int, *, seed: int = 1, first_id: int = 1, id_space: int | None = None
) -> Iterator[Record]:
    """Yield ``n`` records with ids ``first_id..first_id+n-1``; references stay within
    ``1..id_space`` (default: ``n``)."""
    rng = random.Random(f"{seed}-{data_type.value}")
    pool = _blobs(data_type)
    space = id_space or n
    for i in range(first_id, first_id + n):
        data = orjson.loads(rng.choice(pool))
        data["id"] = str(i)
        _vary(data, rng, space)
        yield Record(str(i), hashlib.sha256(canonical_json(data)).hexdigest(), data)


def _vary(data: dict[str, Any], rng: random.Random, space: int) -> None:
    for key in ("name", "title"):
        if key in data:
            data[key] = f"{data[key]} {_word(rng)}"
    for key in ("main_release", "master_id"):
        if key in data:
            data[key] = str(_ref(rng, space))
    if isinstance(data.get("parentLabel"), dict) and "id" in data["parentLabel"]:
        data["parentLabel"]["id"] = str(_ref(rng, space))
    for key in _REF_FIELDS:
        for item in data.get(key) or []:
            if isinstance(item, dict) and "id" in item:
                item["id"] = str(_ref(rng, space))


def _ref(rng: random.Random, space: int) -> int:
    # Pareto-like skew: small ids are referenced far more often than large ones.
    return min(space, int(rng.paretovariate(1.2))) if rng.random() < 0.3 else rng.randint(1, space)


def _word(rng: random.Random) -> str:
    return "".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 9)))


def calibration(records: list[Record]) -> dict[str, float]:
    """Shape statistics, to compare generated records with the samples."""
    n = max(len(records), 1)
    return {
        "records": len(records),
        "mean_bytes": sum(len(orjson.dumps(r.data)) for r in records) / n,
        "mean_tracks": sum(len(r.data.get("tracklist", [])) for r in records) / n,
        "mean_credits": sum(len(r.data.get("extraartists", [])) for r in records) / n,
        "mean_artists": sum(len(r.data.get("artists", [])) for r in records) / n,
        "mean_genres": sum(len(r.data.get("genres", [])) for r in records) / n,
    }
