"""The XML-to-raw conversion: the xmltodict convention, quick-xml's reading equal to expat's
wherever it is used, and the mypyc-compiled build equal to the interpreted source on every
record of the samples."""

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
from extractor.rawshape import element_to_raw, quick_raw
from extractor.xmlparse import DumpError, iter_raw

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "data" / "samples"


def raw(xml: str | bytes) -> Any:
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


# Well-formed records where quick-xml and expat could part: each must read as expat reads
# it, by quick-xml or (None) by handing it to expat.
EDGES = [
    b'<r id="1"><a>x</a><b/><b>2</b><c k="v">t</c><d k="v"/></r>',
    b"<r>\n  <a>x</a>\n  <b>y</b>\n</r>",  # indented: whitespace between elements
    b"<r>lead<a>x</a>tail</r>",  # text beside children
    b'<r><a k="v">t<b>1</b>u</a></r>',
    b"<r><a>x<!-- note -->y</a><!-- c --><b>1</b></r>",
    b"<r><a><![CDATA[x <y> & z]]></a></r>",
    b"<r><?pi data?><a>x<?pi?>y</a></r>",
    b"<r><a>one\r\ntwo\rthree</a></r>",
    b'<r><a k="one\r\ntwo"/></r>',
    b'<r><a k="tab\there" j="line\nbreak"/></r>',
    b'<r><a k="&#9;&#10;&#13;">&#9;&#10;&#13;</a></r>',
    b'<r><a k="&lt;&gt;&amp;&quot;&apos;">&lt;&gt;&amp;&quot;&apos;</a></r>',
    b'<r xmlns="urn:x"><a>x</a></r>',
    b'<r xmlns:p="urn:p"><p:a>x</p:a></r>',
    b'<r><a xml:lang="en">x</a></r>',
    b"<r><a> </a><b>  padded  </b><c>&#32;</c></r>",
    b"<r><a></a><b/><c>  </c></r>",
    "<r><a>Dahlbäck 東京 😀 &#x1F600;</a></r>".encode(),
    b'<r a="1" b="2"><a>3</a><b>4</b></r>',  # an attribute and a child of one name
]


@pytest.mark.parametrize("xml", EDGES)
def test_quick_xml_reads_a_record_as_expat_does_or_leaves_it_to_expat(xml: bytes) -> None:
    got = quick_raw(xml)
    assert got is None or got == raw(xml)


@pytest.mark.parametrize("data_type", list(DataType))
def test_quick_xml_reads_the_samples_as_expat_does(data_type: DataType) -> None:
    dump = DumpFile.from_path(SAMPLES / f"discogs_20200806_{data_type.value}.xml.gz")
    quick = 0
    for chunk in cut(dump, max_records=100, max_bytes=1 << 24):
        for start, end in chunk.spans:
            blob = chunk.blob[start:end]
            got = quick_raw(blob)
            if got is not None:
                quick += 1
                assert got == raw(blob)
    assert quick >= 990  # nearly every record takes the fast path


def test_malformed_xml_is_left_to_expat() -> None:
    for xml in (b"<r><a>x</r>", b"<r><a>&undefined;</a></r>", b"<r>\xff</r>", b"<r><a>"):
        assert quick_raw(xml) is None


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
            blob = chunk.blob[start:end]
            element = ElementTree.fromstring(blob)
            assert extractor.rawshape.element_to_raw(element) == source.element_to_raw(element)
            assert extractor.rawshape.quick_raw(blob) == source.quick_raw(blob)
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
