"""The streaming dump reader on the real samples: counts, known records, broken files."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from common.records import DataType, Record
from extractor.cutting import cut
from extractor.xmlparse import DumpError, DumpFile, iter_records

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"


def sample(data_type: DataType) -> DumpFile:
    return DumpFile.from_path(SAMPLES / f"discogs_20200806_{data_type.value}.xml.gz")


def by_id(data_type: DataType) -> dict[str, Record]:
    return {r.id: r for r in iter_records(sample(data_type))}


@pytest.mark.parametrize("data_type", list(DataType))
def test_each_sample_holds_exactly_1000_records(data_type: DataType) -> None:
    dump = sample(data_type)
    assert (dump.data_type, dump.version) == (data_type, "20200806")
    records = list(iter_records(dump))
    assert len(records) == 1000
    assert len({r.id for r in records}) == 1000
    assert all(len(r.sha256) == 64 for r in records)


def test_release_1_field_by_field() -> None:
    release = by_id(DataType.RELEASES)["1"].data
    assert release["title"] == "Stockholm"
    assert release["artists"] == [{"id": "1", "name": "The Persuader"}]
    assert release["labels"] == [{"id": "5", "name": "Svek", "catno": "SK032"}]
    assert release["formats"] == [
        {"name": "Vinyl", "qty": "2", "descriptions": ['12"', "33 ⅓ RPM"]}
    ]
    assert release["country"] == "Sweden"
    assert release["released"] == "1999-03-00"
    assert release["genres"] == ["Electronic"]
    assert release["styles"] == ["Deep House"]
    assert release["master_id"] == "1660109"
    assert release["is_main_release"] is True
    assert [t["title"] for t in release["tracklist"]][:2] == ["Östermalm", "Vasastaden"]


def test_artist_with_aliases_and_members() -> None:
    artist = by_id(DataType.ARTISTS)["2"].data
    assert artist["name"] == "Mr. James Barth & A.D."
    assert artist["realname"] == "Cari Lekebusch & Alexi Delano"
    assert {"id": "2470", "name": "Puente Latino"} in artist["aliases"]
    assert artist["members"] == [
        {"id": "26", "name": "Alexi Delano"},
        {"id": "27", "name": "Cari Lekebusch"},
    ]
    assert "Mr Barth & A.D." in artist["namevariations"]


def test_label_with_parent_label() -> None:
    label = by_id(DataType.LABELS)["5"].data
    assert label["name"] == "Svek"
    assert label["parentLabel"] == {"id": "4711", "name": "Goldhead Music"}
    # The sample's sublabels are all empty <label/> elements: kept in place, as {}, and
    # nested <label> elements must not be records.
    records = list(iter_records(sample(DataType.LABELS)))
    sublabels = [s for r in records for s in r.data.get("sublabels", [])]
    assert sublabels
    assert all(s == {} for s in sublabels)
    assert len(records) == 1000


def test_master_year_is_an_int() -> None:
    master = by_id(DataType.MASTERS)["113"].data
    assert master["title"] == "Moments In Time"
    assert master["year"] == 2002
    assert master["main_release"] == "116925"
    assert master["artists"] == [{"id": "3225", "name": "Vince Watson"}]
    assert master["genres"] == ["Electronic"]


def test_progress_reaches_the_whole_file() -> None:
    fractions = [c.fraction for c in cut(sample(DataType.LABELS), max_records=100, max_bytes=1)]
    assert 0.0 < fractions[0] <= 1.0
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0


def test_truncated_gzip_names_file_and_position(tmp_path: Path) -> None:
    data = (SAMPLES / "discogs_20200806_releases.xml.gz").read_bytes()
    path = tmp_path / "discogs_20200806_releases.xml.gz"
    path.write_bytes(data[: len(data) // 2])
    seen: list[str] = []
    with pytest.raises(DumpError) as info:
        seen.extend(r.id for r in iter_records(DumpFile.from_path(path)))
    message = str(info.value)
    assert str(path) in message
    assert "truncated or corrupt gzip at compressed byte" in message
    assert f"after {len(seen)} records" in message
    assert 0 < len(seen) < 1000


def test_malformed_xml_names_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "discogs_20200806_labels.xml.gz"
    xml = b"<labels><label><id>1</id><name>A</name></label>\n<label><id>2</id><name>B</nam></label>"
    path.write_bytes(gzip.compress(xml))
    seen: list[str] = []
    with pytest.raises(DumpError, match=r"malformed XML at line 2, column \d+ after 1 records"):
        seen.extend(r.id for r in iter_records(DumpFile.from_path(path)))
    assert seen == ["1"]
    with pytest.raises(DumpError, match=str(path)):
        list(iter_records(DumpFile.from_path(path)))


def test_a_control_character_in_text_is_read_as_written(tmp_path: Path) -> None:
    # XML 1.0 forbids it and expat stopped the load there; quick-xml reads it, and some
    # Discogs dumps have carried such characters (docs/reliability.md, "A bad dump file").
    path = tmp_path / "discogs_20200806_labels.xml"
    path.write_bytes(b"<labels><label><id>1</id><profile>bell\x07 &#1;</profile></label></labels>")
    (record,) = iter_records(DumpFile.from_path(path))
    assert record.data["profile"] == "bell\x07 \x01"


@pytest.mark.parametrize("wrapper", [b"", b'<x k="a tab\t: read by expat"/>'])
def test_a_record_nested_beyond_any_discogs_record_is_a_dump_error(
    tmp_path: Path, wrapper: bytes
) -> None:
    # 100,000 levels crashed a worker (the C stack) before the depth bound.
    deep = b"<a>" * 100_000 + b"x" + b"</a>" * 100_000
    path = tmp_path / "discogs_20200806_labels.xml"
    path.write_bytes(b"<labels><label><id>1</id>" + wrapper + deep + b"</label></labels>")
    with pytest.raises(DumpError, match=r"record #1 is invalid: record nests deeper than"):
        list(iter_records(DumpFile.from_path(path)))


def test_record_that_cannot_be_normalised_is_a_dump_error(tmp_path: Path) -> None:
    path = tmp_path / "discogs_20200806_masters.xml"
    path.write_bytes(b'<masters><master id="12x"><title>T</title></master></masters>')
    with pytest.raises(DumpError, match=r"record #1 is invalid"):
        list(iter_records(DumpFile.from_path(path)))


def test_a_name_that_is_no_dump_is_refused() -> None:
    with pytest.raises(DumpError, match="not a Discogs dump name"):
        DumpFile.from_path(Path("releases.xml.gz"))
