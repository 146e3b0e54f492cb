"""Every child element of a dump's lists is kept, empty or not: the normalised tracklists
and sublabel lists of the samples have as many items as an independent count of the XML."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.records import DataType
from extractor.xmlparse import DumpFile, iter_records
from tests.xmlcount import children_per_record

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"


def normalised_lengths(data_type: DataType, key: str) -> dict[str, int]:
    path = SAMPLES / f"discogs_20200806_{data_type.value}.xml.gz"
    return {r.id: len(r.data[key]) for r in iter_records(DumpFile.from_path(path)) if key in r.data}


@pytest.mark.parametrize(
    ("data_type", "key", "wrapper"),
    [(DataType.RELEASES, "tracklist", "tracklist"), (DataType.LABELS, "sublabels", "sublabels")],
)
def test_list_lengths_match_the_xml(data_type: DataType, key: str, wrapper: str) -> None:
    path = SAMPLES / f"discogs_20200806_{data_type.value}.xml.gz"
    expected = children_per_record(path, wrapper)
    assert expected  # the samples do hold such lists
    assert normalised_lengths(data_type, key) == expected


def test_the_samples_hold_empty_tracks_and_sublabels_and_keep_them() -> None:
    """The case the comparison above is about: fully empty elements in the samples."""
    releases = SAMPLES / "discogs_20200806_releases.xml.gz"
    tracks = [
        t
        for r in iter_records(DumpFile.from_path(releases))
        for t in r.data.get("tracklist", [])
        if t == {}
    ]
    labels = SAMPLES / "discogs_20200806_labels.xml.gz"
    sublabels = [
        s
        for r in iter_records(DumpFile.from_path(labels))
        for s in r.data.get("sublabels", [])
        if s == {}
    ]
    assert len(tracks) == 20
    assert sublabels
