"""The XML-to-raw conversion: the xmltodict convention, and its mypyc-compiled build equal
to its interpreted source on every record of the samples."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any
from xml.etree import ElementTree

import pytest

import extractor.rawshape
from common.records import DataType
from extractor.cutting import cut
from extractor.dumpfile import DumpFile
from extractor.rawshape import element_to_raw
from extractor.xmlparse import DumpError, iter_raw

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "data" / "samples"


def raw(xml: str) -> Any:
    return element_to_raw(ElementTree.fromstring(xml))


def test_attributes_text_and_repeats_follow_the_xmltodict_convention() -> None:
    got = raw(
        '<release id="7" status="Accepted"><title>T</title>'
        '<format name="CD" qty="2">box</format><genres><genre>Rock</genre>'
        '<genre>Pop</genre></genres><notes/><empty a="1"/></release>'
    )
    assert got == {
        "@id": "7",
        "@status": "Accepted",
        "title": "T",
        "format": {"@name": "CD", "@qty": "2", "#text": "box"},
        "genres": {"genre": ["Rock", "Pop"]},
        "notes": None,
        "empty": {"@a": "1"},
    }


def test_a_tag_repeated_three_times_is_one_list_in_order() -> None:
    assert raw("<a><b>1</b><b>2</b><b>3</b></a>") == {"b": ["1", "2", "3"]}


def test_comments_among_children_are_skipped() -> None:
    element = ElementTree.fromstring("<a><b>1</b></a>")
    element.append(ElementTree.Comment("a comment"))
    assert element_to_raw(element) == {"b": "1"}


def _interpreted() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "rawshape_source", ROOT / "extractor" / "rawshape.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("data_type", list(DataType))
def test_installed_build_equals_the_interpreted_source(data_type: DataType) -> None:
    source = _interpreted()
    dump = DumpFile.from_path(SAMPLES / f"discogs_20200806_{data_type.value}.xml.gz")
    records = 0
    for chunk in cut(dump, max_records=100, max_bytes=1 << 24):
        for start, end in chunk.spans:
            element = ElementTree.fromstring(chunk.blob[start:end])
            assert extractor.rawshape.element_to_raw(element) == source.element_to_raw(element)
            records += 1
    assert records == 1000


def test_a_record_cannot_declare_entities(tmp_path: Path) -> None:
    # A DOCTYPE may only stand before the root element: inside a cut record it is malformed.
    body = (
        b'<labels><label><!DOCTYPE x [<!ENTITY a "aaaa">]><id>1</id><name>&a;</name>'
        b"</label></labels>"
    )
    path = tmp_path / "discogs_20200806_labels.xml.gz"
    path.write_bytes(gzip.compress(body))
    with pytest.raises(DumpError, match="malformed XML"):
        list(iter_raw(DumpFile.from_path(path)))
