"""graphinator's parameter rows: records turned into the ``$rows`` of the statements in
:mod:`graphinator.cypher`. Pure: no I/O.

Rows are deduplicated and sorted by target node so that concurrent transactions lock in
the same order (docs/graph-model.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from common.records import DataType, Record, release_year
from graphinator.cypher import ARTIST, GENRE, LABEL, MASTER, PLANS, STYLE

Row = dict[str, Any]
_MAX_ID = 2**63 - 1


class Rows(list[Any]):
    """A list parameter (``$rows``, ``$owners``) whose repr is only its length. The driver
    formats every RUN's parameters for its debug log even when that log is off (neo4j
    5.28 and 6.4 alike), which for a batch's rows cost about as much as packing them."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<{len(self)} rows>"


@dataclass(frozen=True, slots=True)
class Statement:
    query: str
    rows: list[Row]
    targets: bool = False  # returns the former targets of removed edges (column ``t``)
    owners: list[str] | None = None  # ``$owners`` of a links statement: element ids


def node_id(value: object) -> int | None:
    """A Discogs id as stored in the graph (an integer), or None if ``value`` is not one.

    ``0`` is None: Discogs uses it for a credit that links to no artist page.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    text = str(value).strip()
    if not text.isascii() or not text.isdigit():
        return None
    number = int(text)
    return number if 0 < number <= _MAX_ID else None


def text(value: object) -> str | None:
    """A scalar field as text; None for absent, empty or non-scalar values."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return str(value)
    return value if isinstance(value, str) and value else None


def texts(value: object) -> list[str]:
    """A list of text values, empty ones dropped and duplicates removed (first kept)."""
    items = value if isinstance(value, list) else []
    return list(dict.fromkeys(t for item in items if (t := text(item)) is not None))


def refs(value: object) -> list[tuple[int, str | None]]:
    """``(id, name)`` of the reference objects in a list (or a single one) having an id."""
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if isinstance(item, dict) and (ref := node_id(item.get("id"))) is not None:
            out.append((ref, text(item.get("name"))))
    return out


_TEXT_FIELDS: dict[DataType, tuple[str, ...]] = {
    DataType.RELEASES: ("title", "released", "country", "data_quality", "status"),
    DataType.MASTERS: ("title", "data_quality"),
    DataType.ARTISTS: ("name", "realname", "data_quality"),
    DataType.LABELS: ("name", "data_quality"),
}
# What the rows read of a release, and of the objects in some of its fields only these keys.
_RELEASE_FIELDS = (
    *_TEXT_FIELDS[DataType.RELEASES],
    *("formats", "is_main_release", "artists", "extraartists", "labels", "master_id"),
    *("genres", "styles"),
)
_READ_INSIDE: dict[str, tuple[str, ...]] = {
    "formats": ("name",),
    "artists": ("id", "name"),
    "extraartists": ("id", "name", "role"),
    "labels": ("id", "name", "catno"),
}


def graph_record(data_type: DataType, record: Record) -> Record:
    """The part of a release the rows read, for records decoded on a worker process (what
    crosses back is pickled; tracklist, notes and credit details are most of a release).
    The canonical JSON stays for dead-lettering the record whole. Other types, and a
    record without its canonical JSON, are kept whole: their records are small, and
    cutting them cost the worker about what it saved the consumer."""
    if data_type is not DataType.RELEASES or record.encoded is None:
        return record
    data, out = record.data, {}
    for key in _RELEASE_FIELDS:
        if key in data:
            value = data[key]
            inside = _READ_INSIDE.get(key)
            out[key] = value if inside is None else _keep(value, inside)
    return record.with_data(out)


def _keep(value: object, keys: tuple[str, ...]) -> object:
    """``value`` (an object, or a list of them) with only ``keys`` in each object."""
    if isinstance(value, dict):
        return {k: value[k] for k in keys if k in value}
    if isinstance(value, list):
        return [{k: v[k] for k in keys if k in v} if isinstance(v, dict) else v for v in value]
    return value


def gate_rows(records: Sequence[Record]) -> list[Row]:
    """Rows for ``GATE``, sorted by id; ValueError for a record without an id."""
    rows = Rows()
    for record in records:
        ident = node_id(record.id)
        if ident is None:
            raise ValueError(f"record id {record.id[:40]!r} is not a Discogs id")
        rows.append({"id": ident, "hash": record.stored_hash, "version": record.version})
    rows.sort(key=lambda row: row["id"])
    return rows


def props_rows(
    data_type: DataType, records: Sequence[Record], changed: dict[int, tuple[str, str | None]]
) -> list[Row]:
    """Rows for ``NODE_PROPS``: the properties of the ``changed`` records (id -> element
    id, version seen), the last record of an id winning, as the gate let it."""
    props: dict[int, Row] = {}
    for record in records:
        ident = node_id(record.id)
        if ident is None or ident not in changed:
            continue
        node, seen = changed[ident]
        base: Row = {"id": ident, "hash": record.stored_hash, "placeholder": False, "seen": seen}
        extra = _props(data_type, record.data)
        props[ident] = {
            "node": node,
            "props": {k: v for k, v in (base | extra).items() if v not in (None, [])},
        }
    return Rows([props[ident] for ident in sorted(props)])


def _props(data_type: DataType, d: dict[str, Any]) -> Row:
    """The node properties of a record (see docs/graph-model.md), None where absent."""
    props: Row = {key: text(d.get(key)) for key in _TEXT_FIELDS[data_type]}
    if data_type is DataType.RELEASES:
        formats = d.get("formats")
        names = [f.get("name") for f in formats if isinstance(f, dict)] if formats else []
        main = d.get("is_main_release")
        props["year"] = release_year(d.get("released"))
        props["formats"] = texts(names)
        props["is_main_release"] = main if isinstance(main, bool) else None
    elif data_type is DataType.MASTERS:
        props["year"] = release_year(d.get("year"))
        props["main_release"] = node_id(d.get("main_release"))
    elif data_type is DataType.ARTISTS:
        props["namevariations"] = texts(d.get("namevariations"))
    return props


_Edge = tuple[int, str, str | None]  # (owner id, kind, property)


@dataclass
class _Ref:
    """A referenced node: the smallest name the references gave it, the edges to it, each
    with the smallest name its references gave the node (graphinator.names)."""

    name: str | None = None
    edges: dict[_Edge, str | None] = field(default_factory=dict)


@dataclass
class _Links:
    """The referenced nodes of a set of changed records, by label, and the edges to each
    as (owner id, kind, property), deduplicated."""

    refs: dict[str, dict[Any, _Ref]] = field(default_factory=dict)

    def add(self, label: str, key: Any, name: str | None, edge: _Edge) -> None:
        ref = self.refs.setdefault(label, {}).setdefault(key, _Ref(name))
        if name is not None and (ref.name is None or name < ref.name):
            ref.name = name
        given = ref.edges.get(edge)
        if given is None or (name is not None and name < given):
            ref.edges[edge] = name

    def tags(self, owner: int, data: dict[str, Any]) -> None:
        for label, key in ((GENRE, "genres"), (STYLE, "styles")):
            for name in texts(data.get(key)):
                self.add(label, name, None, (owner, "is", None))


def _release_links(links: _Links, src: int, d: dict[str, Any]) -> None:
    for ref, name in refs(d.get("artists")):
        links.add(ARTIST, ref, name, (src, "by", None))
    for item in d.get("extraartists") or []:
        for ref, name in refs(item):
            links.add(ARTIST, ref, name, (src, "credit", text(item.get("role"))))
    for item in d.get("labels") or []:
        for ref, name in refs(item):
            links.add(LABEL, ref, name, (src, "on", text(item.get("catno"))))
    if (master := node_id(d.get("master_id"))) is not None:
        links.add(MASTER, master, None, (src, "from", None))
    links.tags(src, d)


def _master_links(links: _Links, src: int, d: dict[str, Any]) -> None:
    for ref, name in refs(d.get("artists")):
        links.add(ARTIST, ref, name, (src, "by", None))
    links.tags(src, d)


def _artist_links(links: _Links, src: int, d: dict[str, Any]) -> None:
    for kind, key in (("alias", "aliases"), ("member", "members"), ("group", "groups")):
        for ref, name in refs(d.get(key)):
            links.add(ARTIST, ref, name, (src, kind, None))


def _label_links(links: _Links, src: int, d: dict[str, Any]) -> None:
    for ref, name in refs(d.get("parentLabel")):
        links.add(LABEL, ref, name, (src, "parent", None))
    for ref, name in refs(d.get("sublabels")):
        links.add(LABEL, ref, name, (src, "sublabel", None))


_LINKS: dict[DataType, Callable[[_Links, int, dict[str, Any]], None]] = {
    DataType.RELEASES: _release_links,
    DataType.MASTERS: _master_links,
    DataType.ARTISTS: _artist_links,
    DataType.LABELS: _label_links,
}


def removal_statements(data_type: DataType, owners: Iterable[int]) -> list[Statement]:
    """The statements that remove the edges ``owners`` (complete nodes) own."""
    ids = Rows([{"id": ident} for ident in sorted(set(owners))])
    return [Statement(query, ids, targets=True) for query in PLANS[data_type].owned] if ids else []


def link_statements(
    data_type: DataType, changed: Iterable[Record], nodes: dict[int, str]
) -> list[Statement]:
    """The statements that create the edges of ``changed`` records (and the placeholders
    and tags they reference); ``nodes`` maps each record's id to its element id."""
    links = _Links()
    for record in changed:
        if (src := node_id(record.id)) is not None and src in nodes:
            _LINKS[data_type](links, src, record.data)
    out = []
    for label, query in PLANS[data_type].links.items():
        known = links.refs.get(label)
        if not known:
            continue
        owners: dict[int, int] = {}  # owner id -> its index in $owners
        rows = Rows(
            {"ref": key, "name": ref.name, "edges": _edge_rows(ref, owners)}
            for key, ref in sorted(known.items())
        )
        out.append(Statement(query, rows, owners=Rows(nodes[owner] for owner in owners)))
    return out


def _edge_rows(ref: _Ref, owners: dict[int, int]) -> list[list[Any]]:
    """``[owner index, kind, property, name]`` of the edges to one node, sorted."""
    edges = sorted(ref.edges.items(), key=_edge_order) if len(ref.edges) > 1 else ref.edges.items()
    return [
        [owners.setdefault(owner, len(owners)), kind, prop, name]
        for (owner, kind, prop), name in edges
    ]


def _edge_order(item: tuple[_Edge, str | None]) -> tuple[int, str, str]:
    (owner, kind, prop), _ = item
    return owner, kind, prop or ""
