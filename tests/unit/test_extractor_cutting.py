"""Cutting the XML stream into records: whole records, in order, however the blocks fall."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from common.records import DataType
from extractor import inflate
from extractor.cutting import RawChunk, cut
from extractor.xmlparse import DumpError, DumpFile, iter_records

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"
PROLOG = b'<?xml version="1.0" encoding="UTF-8"?>\n'


def labels_file(tmp_path: Path, body: bytes, *, prolog: bytes = PROLOG) -> DumpFile:
    path = tmp_path / "discogs_20200806_labels.xml.gz"
    path.write_bytes(gzip.compress(prolog + body))
    return DumpFile.from_path(path)


def records(chunks: list[RawChunk]) -> list[bytes]:
    return [c.blob[s:e] for c in chunks for s, e in c.spans]


@pytest.mark.parametrize("block", [1, 7, 4096])
def test_nested_and_empty_record_tags_cut_whole_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    monkeypatch.setattr(inflate, "BLOCK", block)
    one = b'<label><id>1</id><sublabels><label id="2">B</label></sublabels></label>'
    two = b'<label id="3"/>'
    three = b"<label>\n<id>4</id><labels>x</labels><parentLabel id='1'>A</parentLabel></label>"
    dump = labels_file(tmp_path, b"<labels>\n " + one + b"\n" + two + three + b"\n</labels>\n")
    chunks = list(cut(dump, max_records=2, max_bytes=1 << 20))
    assert records(chunks) == [one, two, three]
    assert [(c.first, len(c.spans)) for c in chunks] == [(1, 2), (3, 1)]
    assert chunks[0].position(0) == (3, 2)  # line 1 is the prolog, then "<labels>"
    assert chunks[1].position(0) == (4, 16)


@pytest.mark.parametrize("block", [1, 5, 4096])
def test_the_record_name_elsewhere_is_not_a_tag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    monkeypatch.setattr(inflate, "BLOCK", block)
    one = (
        b'<label id="1"><name>label /> label> a label</name><sublabel>x</sublabel>'
        b'<prelabel/><p a="label b/>">label</p></label>'
    )
    two = b"<label\n id='2'\n>label</label >"
    dump = labels_file(tmp_path, b"<labels>" + one + two + b"</labels>")
    assert records(list(cut(dump, max_records=5, max_bytes=1 << 20))) == [one, two]


def test_chunks_close_at_the_byte_limit(tmp_path: Path) -> None:
    label = b"<label><id>%d</id><name>" + b"n" * 100 + b"</name></label>"
    dump = labels_file(
        tmp_path, b"<labels>" + b"".join(label % i for i in range(10)) + b"</labels>"
    )
    chunks = list(cut(dump, max_records=100, max_bytes=300))
    assert [len(c.spans) for c in chunks] == [3, 3, 3, 1]


@pytest.mark.parametrize("data_type", list(DataType))
def test_the_samples_cut_into_their_records(data_type: DataType) -> None:
    dump = DumpFile.from_path(SAMPLES / f"discogs_20200806_{data_type.value}.xml.gz")
    chunks = list(cut(dump, max_records=300, max_bytes=1 << 30))
    assert [len(c.spans) for c in chunks] == [300, 300, 300, 100]
    assert [c.first for c in chunks] == [1, 301, 601, 901]


@pytest.mark.parametrize(
    ("body", "what"),
    [
        (b"<labels><label><id>1</id></label>junk<label></label></labels>", "text between"),
        (b"<labels><label><id>1</id></label></label></labels>", "</label> outside a record"),
        (b"<artists><label><id>1</id></label></artists>", "no <labels> root element"),
        (b"<labels><label><id>1</id></label>", "does not end with </labels>"),
        (b"<labels><label><id>1</id></label><label><id>2</id>", "ends inside record #2"),
    ],
)
def test_what_lies_outside_records_is_checked(tmp_path: Path, body: bytes, what: str) -> None:
    dump = labels_file(tmp_path, body)
    got: list[RawChunk] = []
    with pytest.raises(DumpError, match=f"{dump.path}: malformed XML at line .*{what}"):
        got.extend(cut(dump, max_records=10, max_bytes=1 << 20))
    expected = 0 if "root" in what else 1
    assert len(records(got)) == expected  # what came before the break is handed out


def test_empty_dumps_have_no_records(tmp_path: Path) -> None:
    for body in (b"<labels/>", b"<labels>\n</labels>"):
        assert list(cut(labels_file(tmp_path, body), max_records=1, max_bytes=1)) == []


def test_another_encoding_is_refused(tmp_path: Path) -> None:
    prolog = b'<?xml version="1.0" encoding="ISO-8859-1"?>'
    dump = labels_file(tmp_path, b"<labels><label><id>1</id></label></labels>", prolog=prolog)
    with pytest.raises(DumpError, match="encoding 'ISO-8859-1'"):
        list(cut(dump, max_records=1, max_bytes=1))


def test_a_record_broken_inside_names_its_line(tmp_path: Path) -> None:
    body = b"<labels>\n<label><id>1</id></label>\n<label>\n<id>2</idd>\n</label>\n</labels>"
    dump = labels_file(tmp_path, body)
    seen: list[str] = []
    with pytest.raises(DumpError, match=r"malformed XML at line 5, column \d+ after 1 records"):
        seen.extend(r.id for r in iter_records(dump))
    assert seen == ["1"]


def test_comments_and_a_doctype_may_precede_the_root(tmp_path: Path) -> None:
    prolog = PROLOG + b"<!-- made\nby hand -->\n<!DOCTYPE labels>\n"
    dump = labels_file(tmp_path, b"<labels><label><id>1</id></label></labels>", prolog=prolog)
    assert [r.id for r in iter_records(dump)] == ["1"]
