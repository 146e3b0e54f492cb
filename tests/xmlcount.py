"""An independent count of the graph a set of Discogs XML dumps should produce.

Reads the XML with the standard library only (not common.records, not the extractor), so
that a bug in normalisation or in the writer's row building cannot hide itself in the
expected figures. It applies the model's rules as docs/graph-model.md states them:

- a reference links only when it carries a positive integer id (``0`` means "no page");
- BY: distinct artists of a release's / master's own ``artists`` (not the tracklist's);
- CREDITED_ON: distinct (artist, role) of a release's own ``extraartists``;
- ON: distinct (label, catno) of a release's ``labels``;
- IS: distinct genres and distinct styles of a release / master;
- ALIAS_OF: distinct aliases of an artist (one edge per direction a record states);
- MEMBER_OF: the union of (member, group) stated by a group's ``members`` and by a
  member's ``groups``; SUBLABEL_OF likewise from ``sublabels`` and ``parentLabel``.
"""

from __future__ import annotations

import gzip
import xml.etree.ElementTree as ET  # parsing our own trusted sample files
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

_TAGS = {"artists": "artist", "labels": "label", "masters": "master", "releases": "release"}


@dataclass
class Expected:
    """Distinct edges per relationship type, and node ids / names per label."""

    edges: dict[str, set[tuple[object, ...]]] = field(default_factory=dict)
    nodes: dict[str, set[object]] = field(default_factory=dict)
    complete: dict[str, set[int]] = field(default_factory=dict)

    def edge(self, rel: str, *key: object) -> None:
        self.edges.setdefault(rel, set()).add(key)

    def node(self, label: str, key: object) -> None:
        self.nodes.setdefault(label, set()).add(key)

    def edge_counts(self) -> Counter[str]:
        return Counter({rel: len(keys) for rel, keys in self.edges.items()})

    def node_counts(self) -> Counter[str]:
        return Counter({label: len(keys) for label, keys in self.nodes.items()})


def _elements(path: Path, tag: str) -> Iterator[ET.Element]:
    with gzip.open(path, "rb") as stream:
        depth = 0
        for event, el in ET.iterparse(stream, events=("start", "end")):
            depth += 1 if event == "start" else -1
            if event == "end" and depth == 1 and el.tag == tag:
                yield el
                el.clear()


def _ident(value: str | None) -> int | None:
    text = (value or "").strip()
    return int(text) if text.isdigit() and int(text) > 0 else None


def _text(el: ET.Element | None) -> str | None:
    return el.text if el is not None and el.text else None


def _record_id(el: ET.Element) -> int:
    ident = _ident(el.get("id")) or _ident(_text(el.find("id")))
    assert ident is not None, "record without id"
    return ident


def _refs(el: ET.Element, path: str, label: str, exp: Expected) -> Iterator[int]:
    """Ids of ``path``'s elements whose ``id`` attribute is a real reference."""
    for ref in el.findall(path):
        ident = _ident(ref.get("id"))
        if ident is not None:
            exp.node(label, ident)
            yield ident


def _artist_children(el: ET.Element, path: str, exp: Expected) -> Iterator[tuple[int, ET.Element]]:
    for artist in el.findall(f"{path}/artist"):
        ident = _ident(_text(artist.find("id")))
        if ident is not None:
            exp.node("Artist", ident)
            yield ident, artist


def _tags(el: ET.Element, src: tuple[str, int], exp: Expected) -> None:
    for label, path in (("Genre", "genres/genre"), ("Style", "styles/style")):
        for name in {g.text for g in el.findall(path) if g.text}:
            exp.node(label, name)
            exp.edge("IS", src, (label, name))


def _release(el: ET.Element, exp: Expected) -> None:
    rid = _record_id(el)
    src = ("Release", rid)
    for ident, _ in _artist_children(el, "artists", exp):
        exp.edge("BY", src, ident)
    for ident, artist in _artist_children(el, "extraartists", exp):
        exp.edge("CREDITED_ON", ident, rid, _text(artist.find("role")))
    for label in el.findall("labels/label"):
        lid = _ident(label.get("id"))
        if lid is not None:
            exp.node("Label", lid)
            exp.edge("ON", rid, lid, label.get("catno") or None)
    master = _ident(_text(el.find("master_id")))
    if master is not None:
        exp.node("Master", master)
        exp.edge("DERIVED_FROM", rid, master)
    _tags(el, src, exp)


def _master(el: ET.Element, exp: Expected) -> None:
    src = ("Master", _record_id(el))
    for ident, _ in _artist_children(el, "artists", exp):
        exp.edge("BY", src, ident)
    _tags(el, src, exp)


def _artist(el: ET.Element, exp: Expected) -> None:
    aid = _record_id(el)
    for ident in _refs(el, "aliases/name", "Artist", exp):
        exp.edge("ALIAS_OF", aid, ident)
    for ident in _refs(el, "members/name", "Artist", exp):
        exp.edge("MEMBER_OF", ident, aid)
    for ident in _refs(el, "groups/name", "Artist", exp):
        exp.edge("MEMBER_OF", aid, ident)


def _label(el: ET.Element, exp: Expected) -> None:
    lid = _record_id(el)
    for ident in _refs(el, "sublabels/label", "Label", exp):
        exp.edge("SUBLABEL_OF", ident, lid)
    for ident in _refs(el, "parentLabel", "Label", exp):
        exp.edge("SUBLABEL_OF", lid, ident)


_PARSERS = {"artists": _artist, "labels": _label, "masters": _master, "releases": _release}
_LABELS = {"artists": "Artist", "labels": "Label", "masters": "Master", "releases": "Release"}


def count(paths: dict[str, Path]) -> Expected:
    """The expected graph of the dumps ``paths`` (data type -> file)."""
    exp = Expected()
    for data_type, path in paths.items():
        label = _LABELS[data_type]
        for el in _elements(path, _TAGS[data_type]):
            ident = _record_id(el)
            exp.node(label, ident)
            exp.complete.setdefault(label, set()).add(ident)
            _PARSERS[data_type](el, exp)
    return exp


def children_per_record(path: Path, wrapper: str) -> dict[str, int]:
    """Per record id: how many child elements its ``wrapper`` element holds, empty ones
    included (records without the wrapper are absent)."""
    tag = _TAGS[path.name.split("_")[2].split(".")[0]]
    out = {}
    for el in _elements(path, tag):
        found = el.find(wrapper)
        if found is not None and len(found):
            out[str(_record_id(el))] = len(found)
    return out
