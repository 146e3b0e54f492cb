"""REFERENCE ONLY: graphinator/rows.py frozen as it was on main at 275787c (see
:mod:`bench.graph_reference.cypher`); the id, text and property mapping, unchanged since,
is imported.

graphinator's parameter rows: records turned into the ``$rows`` of the statements in
:mod:`graphinator.cypher`. Pure: no I/O.

Rows are deduplicated and sorted by target node so that concurrent transactions lock in
the same order (docs/graph-model.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.graph_reference.cypher import PLACEHOLDER, PLANS, TAG
from common.records import DataType, Record
from graphinator.cypher import ARTIST, GENRE, LABEL, MASTER, NODE_LABEL, STYLE
from graphinator.rows import Row, Statement, _props, node_id, refs, text, texts


def node_rows(data_type: DataType, records: Sequence[Record]) -> list[Row]:
    """Rows for ``MERGE_NODES``, sorted by id; ValueError for a record without an id."""
    rows = []
    for record in records:
        ident = node_id(record.id)
        if ident is None:
            raise ValueError(f"record id {record.id[:40]!r} is not a Discogs id")
        base: Row = {"id": ident, "hash": record.sha256, "placeholder": False}
        extra = {k: v for k, v in _props(data_type, record.data).items() if v not in (None, [])}
        props = base | extra
        rows.append({"id": ident, "hash": record.sha256, "version": record.version, "props": props})
    return sorted(rows, key=lambda row: row["id"])


@dataclass
class _Links:
    """Edges and referenced nodes of a set of changed records, deduplicated."""

    refs: dict[str, dict[int, str | None]] = field(
        default_factory=lambda: {ARTIST: {}, LABEL: {}, MASTER: {}}
    )
    tags: dict[str, set[str]] = field(default_factory=lambda: {GENRE: set(), STYLE: set()})
    edges: dict[str, set[tuple[Any, int, str, str | None]]] = field(default_factory=dict)

    def ref(self, label: str, ident: int, name: str | None) -> None:
        known = self.refs[label]
        old = known.get(ident)
        known[ident] = name if old is None or (name is not None and name < old) else old

    def edge(self, kind: str, src: int, dst: Any, how: str = "", prop: str | None = None) -> None:
        self.edges.setdefault(kind, set()).add((dst, src, how, prop))

    def tag_edges(self, prefix: str, src: int, data: dict[str, Any]) -> None:
        for label, key in ((GENRE, "genres"), (STYLE, "styles")):
            for name in texts(data.get(key)):
                self.tags[label].add(name)
                self.edge(f"{prefix}_{label.lower()}", src, name)


def _release_links(links: _Links, src: int, d: dict[str, Any]) -> None:
    for ref, name in refs(d.get("artists")):
        links.ref(ARTIST, ref, name)
        links.edge("release_artist", src, ref, "by")
    for item in d.get("extraartists") or []:
        for ref, name in refs(item):
            links.ref(ARTIST, ref, name)
            links.edge("release_artist", src, ref, "credit", text(item.get("role")))
    for item in d.get("labels") or []:
        for ref, name in refs(item):
            links.ref(LABEL, ref, name)
            links.edge("release_label", src, ref, "", text(item.get("catno")))
    if (master := node_id(d.get("master_id"))) is not None:
        links.ref(MASTER, master, None)
        links.edge("release_master", src, master)
    links.tag_edges("release", src, d)


def _master_links(links: _Links, src: int, d: dict[str, Any]) -> None:
    for ref, name in refs(d.get("artists")):
        links.ref(ARTIST, ref, name)
        links.edge("master_artist", src, ref)
    links.tag_edges("master", src, d)


def _artist_links(links: _Links, src: int, d: dict[str, Any]) -> None:
    for kind, key in (("alias", "aliases"), ("member", "members"), ("group", "groups")):
        for ref, name in refs(d.get(key)):
            links.ref(ARTIST, ref, name)
            if kind == "member":  # the member is a MEMBER_OF this (group) artist
                links.edge(kind, ref, src)
            else:
                links.edge(kind, src, ref)


def _label_links(links: _Links, src: int, d: dict[str, Any]) -> None:
    for ref, name in refs(d.get("parentLabel")):
        links.ref(LABEL, ref, name)
        links.edge("parent", src, ref)
    for ref, name in refs(d.get("sublabels")):
        links.ref(LABEL, ref, name)
        links.edge("sublabel", ref, src)  # the sublabel is SUBLABEL_OF this label


_LINKS: dict[DataType, Callable[[_Links, int, dict[str, Any]], None]] = {
    DataType.RELEASES: _release_links,
    DataType.MASTERS: _master_links,
    DataType.ARTISTS: _artist_links,
    DataType.LABELS: _label_links,
}


def link_statements(data_type: DataType, changed: Iterable[Record]) -> list[Statement]:
    """The statements (with non-empty rows) that replace the edges of ``changed`` records."""
    links = _Links()
    owners: set[int] = set()
    for record in changed:
        if (src := node_id(record.id)) is not None:
            owners.add(src)
            _LINKS[data_type](links, src, record.data)
    if not owners:
        return []
    plan = PLANS[data_type]
    ids = [{"id": ident} for ident in sorted(owners)]
    out = [Statement(query, ids, targets=True) for query in plan.owned]
    own_label = NODE_LABEL[data_type]
    for label, known in links.refs.items():
        rows = [
            {"id": ref, "name": name}
            for ref, name in sorted(known.items())
            if not (label == own_label and ref in owners)  # complete already
        ]
        out.append(Statement(PLACEHOLDER[label], rows))
    for label, names in links.tags.items():
        out.append(Statement(TAG[label], [{"name": name} for name in sorted(names)]))
    for kind, query in plan.edges:
        edges = sorted(links.edges.get(kind, ()), key=lambda e: (e[0], e[1], e[2], e[3] or ""))
        rows = [{"src": s, "dst": d, "kind": how, "prop": prop} for d, s, how, prop in edges]
        out.append(Statement(query, rows))
    return [statement for statement in out if statement.rows]
