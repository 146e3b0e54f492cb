"""graphinator's Cypher statements and the parameter rows for them. Pure: no I/O.

The graph model, and which record owns which relationship, is in docs/graph-model.md.
Every statement is a constant string built at import time from the fixed labels and
relationship types below; every value travels as a ``$rows`` parameter. A batch is
written as: :data:`MERGE_NODES` (which returns the ids whose hash changed), then
:func:`link_statements` for the changed records only: the removal of the edges they own,
placeholders for the nodes they point at, then one ``CREATE``/``MERGE`` per edge kind.
Rows are sorted by target node so that concurrent transactions lock in the same order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from common.records import DataType, Record, release_year

Row = dict[str, Any]

ARTIST, LABEL, MASTER, RELEASE = "Artist", "Label", "Master", "Release"
GENRE, STYLE = "Genre", "Style"
NODE_LABEL: dict[DataType, str] = {
    DataType.ARTISTS: ARTIST,
    DataType.LABELS: LABEL,
    DataType.MASTERS: MASTER,
    DataType.RELEASES: RELEASE,
}
_MAX_ID = 2**63 - 1
_KEYS = [*((label, "id") for label in NODE_LABEL.values()), (GENRE, "name"), (STYLE, "name")]
CONSTRAINTS: tuple[str, ...] = tuple(
    f"CREATE CONSTRAINT {label.lower()}_{key} IF NOT EXISTS "
    f"FOR (n:{label}) REQUIRE n.{key} IS UNIQUE"
    for label, key in _KEYS
)

# Complete (or complete again) every node of the batch whose stored hash differs; the
# returned ids are the changed records. `SET n = ...` drops properties a record lost.
MERGE_NODES: dict[DataType, str] = {
    data_type: f"UNWIND $rows AS row MERGE (n:{label} {{id: row.id}}) "
    "WITH n, row WHERE n.hash IS NULL OR n.hash <> row.hash "
    "SET n = row.props RETURN n.id AS id"
    for data_type, label in NODE_LABEL.items()
}

# A referenced node that has no record yet: it keeps the smallest name any reference
# gave it (so the result does not depend on arrival order) until its record completes it.
PLACEHOLDER: dict[str, str] = {
    label: f"UNWIND $rows AS row MERGE (n:{label} {{id: row.id}}) "
    "ON CREATE SET n.placeholder = true, n.name = row.name "
    "WITH n, row WHERE n.placeholder AND row.name IS NOT NULL "
    "AND (n.name IS NULL OR row.name < n.name) SET n.name = row.name"
    for label in (ARTIST, LABEL, MASTER)
}
TAG: dict[str, str] = {
    label: f"UNWIND $rows AS row MERGE (:{label} {{name: row.name}})" for label in (GENRE, STYLE)
}


def _delete(label: str, pattern: str) -> str:
    return f"UNWIND $rows AS row MATCH (:{label} {{id: row.id}}){pattern} DELETE r"


def _unflag(label: str, pattern: str, rel: str, flag: str, other: str) -> str:
    """Withdraw this record's definition of a two-sided edge; delete it if none is left."""
    return (
        f"UNWIND $rows AS row MATCH (:{label} {{id: row.id}}){pattern.format(rel=rel)} "
        f"WHERE r.{flag} REMOVE r.{flag} WITH r WHERE r.{other} IS NULL DELETE r"
    )


def _create(src: str, rel: str, dst: str, key: str = "id", props: str = "") -> str:
    return (
        f"UNWIND $rows AS row MATCH (s:{src} {{id: row.src}}) "
        f"MATCH (t:{dst} {{{key}: row.dst}}) CREATE (s)-[:{rel}{props}]->(t)"
    )


def _flagged(label: str, rel: str, flag: str) -> str:
    return (
        f"UNWIND $rows AS row MATCH (s:{label} {{id: row.src}}) "
        f"MATCH (t:{label} {{id: row.dst}}) MERGE (s)-[r:{rel}]->(t) SET r.{flag} = true"
    )


_OUT, _IN = "-[r:{rel}]->()", "<-[r:{rel}]-()"
# BY and CREDITED_ON both lock artists: one statement, rows sorted by artist, one lock order.
_RELEASE_ARTIST = (
    "UNWIND $rows AS row MATCH (s:Release {id: row.src}) MATCH (t:Artist {id: row.dst}) "
    "FOREACH (_ IN CASE WHEN row.kind = 'by' THEN [1] ELSE [] END | CREATE (s)-[:BY]->(t)) "
    "FOREACH (_ IN CASE WHEN row.kind = 'credit' THEN [1] ELSE [] END | "
    "CREATE (t)-[:CREDITED_ON {role: row.prop}]->(s))"
)


@dataclass(frozen=True, slots=True)
class _Plan:
    """What a record of one type owns (removal statements) and the edge statements."""

    owned: tuple[str, ...]
    edges: tuple[tuple[str, str], ...]  # (edge kind, statement), in execution order


_PLANS: dict[DataType, _Plan] = {
    DataType.RELEASES: _Plan(
        owned=(
            _delete(RELEASE, "-[r:BY|ON|DERIVED_FROM|IS]->()"),
            _delete(RELEASE, "<-[r:CREDITED_ON]-(:Artist)"),
        ),
        edges=(
            ("release_artist", _RELEASE_ARTIST),
            ("release_label", _create(RELEASE, "ON", LABEL, props=" {catno: row.prop}")),
            ("release_master", _create(RELEASE, "DERIVED_FROM", MASTER)),
            ("release_genre", _create(RELEASE, "IS", GENRE, key="name")),
            ("release_style", _create(RELEASE, "IS", STYLE, key="name")),
        ),
    ),
    DataType.MASTERS: _Plan(
        owned=(_delete(MASTER, "-[r:BY|IS]->()"),),
        edges=(
            ("master_artist", _create(MASTER, "BY", ARTIST)),
            ("master_genre", _create(MASTER, "IS", GENRE, key="name")),
            ("master_style", _create(MASTER, "IS", STYLE, key="name")),
        ),
    ),
    DataType.ARTISTS: _Plan(
        owned=(
            _delete(ARTIST, "-[r:ALIAS_OF]->(:Artist)"),
            _unflag(ARTIST, _IN, "MEMBER_OF", "from_members", "from_groups"),
            _unflag(ARTIST, _OUT, "MEMBER_OF", "from_groups", "from_members"),
        ),
        edges=(
            ("alias", _create(ARTIST, "ALIAS_OF", ARTIST)),
            ("member", _flagged(ARTIST, "MEMBER_OF", "from_members")),
            ("group", _flagged(ARTIST, "MEMBER_OF", "from_groups")),
        ),
    ),
    DataType.LABELS: _Plan(
        owned=(
            _unflag(LABEL, _OUT, "SUBLABEL_OF", "from_parent_label", "from_sublabels"),
            _unflag(LABEL, _IN, "SUBLABEL_OF", "from_sublabels", "from_parent_label"),
        ),
        edges=(
            ("parent", _flagged(LABEL, "SUBLABEL_OF", "from_parent_label")),
            ("sublabel", _flagged(LABEL, "SUBLABEL_OF", "from_sublabels")),
        ),
    ),
}


@dataclass(frozen=True, slots=True)
class Statement:
    query: str
    rows: list[Row]


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


def node_rows(data_type: DataType, records: Sequence[Record]) -> list[Row]:
    """Rows for :data:`MERGE_NODES`, sorted by id; ValueError for a record without an id."""
    rows = []
    for record in records:
        ident = node_id(record.id)
        if ident is None:
            raise ValueError(f"record id {record.id[:40]!r} is not a Discogs id")
        base: Row = {"id": ident, "hash": record.sha256, "placeholder": False}
        extra = {k: v for k, v in _props(data_type, record.data).items() if v not in (None, [])}
        rows.append({"id": ident, "hash": record.sha256, "props": base | extra})
    return sorted(rows, key=lambda row: row["id"])


_TEXT_FIELDS: dict[DataType, tuple[str, ...]] = {
    DataType.RELEASES: ("title", "released", "country", "data_quality", "status"),
    DataType.MASTERS: ("title", "data_quality"),
    DataType.ARTISTS: ("name", "realname", "data_quality"),
    DataType.LABELS: ("name", "data_quality"),
}


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
    plan = _PLANS[data_type]
    ids = [{"id": ident} for ident in sorted(owners)]
    out = [Statement(query, ids) for query in plan.owned]
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
