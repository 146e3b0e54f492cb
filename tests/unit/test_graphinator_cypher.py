"""graphinator.cypher and graphinator.rows: statements are constants with parameters only;
rows are built, deduplicated and sorted as docs/graph-model.md says. No I/O."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import orjson
import pytest

from bench.generate import templates
from common.normalise import normalise
from common.records import DataType, Record
from graphinator import cypher, names, rows
from graphinator.rows import (
    Statement,
    gate_rows,
    link_statements,
    node_id,
    props_rows,
    removal_statements,
)


def rec(data_type: DataType, ident: int | str, **fields: Any) -> Record:
    return normalise(data_type, {"id": str(ident), **fields})


def by_query(statements: list[Statement]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for statement in statements:
        assert statement.query not in out, "one statement per kind"
        out[statement.query] = statement.rows
    return out


def nodes(*records: Record) -> dict[int, str]:
    """Element ids, as the gate returns them, of ``records``' nodes."""
    return {int(r.id): f"e{r.id}" for r in records}


def links(data_type: DataType, *records: Record) -> list[Statement]:
    return link_statements(data_type, records, nodes(*records))


def edges(
    statements: list[Statement], data_type: DataType, label: str, last: int = 2
) -> list[tuple[Any, ...]]:
    """(referenced node, owner's element id, kind, ``e[last]``: the property, or with 3
    the name on the edge) of one label's statement."""
    query = cypher.PLANS[data_type].links[label]
    return [
        (r["ref"], s.owners[e[0]], e[1], e[last])
        for s in statements
        if s.query == query and s.owners is not None
        for r in s.rows
        for e in r["edges"]
    ]


def refs(statements: list[Statement], data_type: DataType, label: str) -> list[tuple[Any, ...]]:
    rows = by_query(statements).get(cypher.PLANS[data_type].links[label], [])
    return [(r["ref"], r["name"]) for r in rows]


def props(data_type: DataType, record: Record, seen: str | None = None) -> dict[str, Any]:
    [row] = props_rows(data_type, [record], {int(record.id): (f"e{record.id}", seen)})
    assert row["node"] == f"e{record.id}"
    return row["props"]  # type: ignore[no-any-return]


ALL_STATEMENTS = [
    *cypher.CONSTRAINTS,
    *cypher.GATE.values(),
    *cypher.NODE_PROPS.values(),
    *(q for plan in cypher.PLANS.values() for q in plan.owned),
    *(q for plan in cypher.PLANS.values() for q in plan.links.values()),
    cypher.ORPHANS,
    cypher.RENAME,
    *(q for p in cypher.PURGE.values() for q in (p.lock, p.claim, p.demote, p.delete)),
]
# Whole-label statements of the purge and the pipeline state: named parameters only.
SCAN_STATEMENTS = [
    *(q for p in cypher.PURGE.values() for q in (p.facts, p.candidates)),
    cypher.FILE_COMPLETE_SET,
    cypher.FILE_COMPLETE_GET,
]


def _fixed_names_only(query: str) -> None:
    kinds = re.findall(r"e\[1\] = '(\w+)'", query)
    assert set(kinds) <= {"by", "credit", "alias", "member", "group", "parent", "sublabel"}
    assert "'" not in re.sub(r"e\[1\] = '\w+'", "", query)
    assert '"' not in query
    assert not re.search(r"[{:]\s*[0-9]", query), "numbers travel as parameters"
    labels = set(re.findall(r"\(\w*:(\w+)", query)) | set(re.findall(r"\bt:(\w+)", query))
    assert labels <= {"Artist", "Label", "Master", "Release", "Genre", "Style", "PipelineState"}
    rels = {r for group in re.findall(r"\[\w*:([\w|]+)", query) for r in group.split("|")}
    allowed = {"MEMBER_OF", "ALIAS_OF", "SUBLABEL_OF", "BY", "ON", "DERIVED_FROM", "IS"}
    assert rels <= allowed | {"CREDITED_ON"}


@pytest.mark.parametrize("query", SCAN_STATEMENTS)
def test_scan_statements_hold_no_values(query: str) -> None:
    _fixed_names_only(query)
    assert set(re.findall(r"\$(\w+)", query)) <= {"version", "data_type"}


@pytest.mark.parametrize("query", ALL_STATEMENTS)
def test_statements_hold_no_values_and_fixed_names_only(query: str) -> None:
    _fixed_names_only(query)
    if not query.startswith("CREATE CONSTRAINT"):
        assert query.removeprefix(cypher.KEEP_PLAN).startswith("UNWIND $rows AS row ")


BATCH_STATEMENTS = [
    *cypher.GATE.values(),
    *cypher.NODE_PROPS.values(),
    *(q for plan in cypher.PLANS.values() for q in plan.owned),
    *(q for plan in cypher.PLANS.values() for q in plan.links.values()),
    cypher.ORPHANS,
    cypher.RENAME,
]


@pytest.mark.parametrize("query", BATCH_STATEMENTS)
def test_batch_statements_keep_their_first_plan(query: str) -> None:
    assert query.startswith("CYPHER replan=skip UNWIND $rows AS row ")


def test_constraints_are_idempotent_and_cover_every_key() -> None:
    assert len(cypher.CONSTRAINTS) == 7
    assert all("IF NOT EXISTS" in q and "IS UNIQUE" in q for q in cypher.CONSTRAINTS)
    assert any("(n:Genre) REQUIRE n.name" in q for q in cypher.CONSTRAINTS)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", 1),
        (" 42 ", 42),
        (7, 7),
        ("007", 7),
        ("0", None),
        (0, None),
        ("", None),
        (None, None),
        (True, None),
        ("12a", None),
        ("-3", None),
        ("١٢", None),  # non-ASCII digits
        (str(2**63), None),
        (str(2**63 - 1), 2**63 - 1),
        ({"id": "1"}, None),
    ],
)
def test_node_id(value: object, expected: int | None) -> None:
    assert node_id(value) == expected


def test_text_and_texts() -> None:
    assert rows.text("") is None
    assert rows.text(None) is None
    assert rows.text(False) is None
    assert rows.text(12) == "12"
    assert rows.text({"a": 1}) is None
    assert rows.texts(["b", "", "a", "b", None, 3]) == ["b", "a", "3"]
    assert rows.texts("not a list") == []


def test_release_node_row() -> None:
    record = rec(
        DataType.RELEASES,
        5,
        title="T",
        released="1999-03-00",
        country="UK",
        status="Accepted",
        data_quality="Correct",
        formats=[{"name": "Vinyl", "qty": "2"}, {"name": "CD"}, {"name": "Vinyl"}, {"qty": "1"}],
        master_id={"#text": "9", "@is_main_release": "true"},
        notes="not in the graph",
    )
    assert gate_rows([record]) == [{"id": 5, "hash": record.stored_hash, "version": None}]
    assert props(DataType.RELEASES, record, seen="20260101") == {
        "id": 5,
        "hash": record.stored_hash,
        "placeholder": False,
        "seen": "20260101",
        "title": "T",
        "year": 1999,
        "released": "1999-03-00",
        "country": "UK",
        "formats": ["Vinyl", "CD"],
        "data_quality": "Correct",
        "status": "Accepted",
        "is_main_release": True,
    }


@pytest.mark.parametrize(
    ("released", "year"),
    [("1999", 1999), ("Mar 1999", None), ("0000-00-00", None), ("2001-00-00", 2001), (None, None)],
)
def test_release_year(released: str | None, year: int | None) -> None:
    fields = {"released": released} if released else {}
    assert props(DataType.RELEASES, rec(DataType.RELEASES, 1, **fields)).get("year") == year


def test_minimal_records_have_only_the_base_properties() -> None:
    for data_type in DataType:
        record = rec(data_type, 3)
        assert props(data_type, record) == {
            "id": 3,
            "hash": record.stored_hash,
            "placeholder": False,
        }
        assert links(data_type, record) == []
        assert removal_statements(data_type, [3]) == [
            Statement(q, [{"id": 3}], targets=True) for q in cypher.PLANS[data_type].owned
        ]


def test_props_only_for_changed_records_last_one_winning() -> None:
    a, b = rec(DataType.LABELS, 1, name="A"), rec(DataType.LABELS, 1, name="B")
    rows = props_rows(DataType.LABELS, [a, rec(DataType.LABELS, 2), b], {1: ("e1", None)})
    assert [(r["node"], r["props"]["name"]) for r in rows] == [("e1", "B")]


def test_master_artist_and_label_properties() -> None:
    m = props(DataType.MASTERS, rec(DataType.MASTERS, 1, title="M", year="1969", main_release="12"))
    assert m | {"hash": None} == {
        "id": 1,
        "hash": None,
        "placeholder": False,
        "title": "M",
        "year": 1969,
        "main_release": 12,
    }
    a = props(
        DataType.ARTISTS,
        rec(
            DataType.ARTISTS, 2, name="N", realname="R", namevariations=["x", "x", "y"], profile="p"
        ),
    )
    assert a["namevariations"] == ["x", "y"]
    assert "profile" not in a
    lab = props(DataType.LABELS, rec(DataType.LABELS, 3, name="L", contactinfo="c"))
    assert set(lab) == {"id", "hash", "placeholder", "name"}


def test_gate_rows_sorted_by_numeric_id_and_reject_bad_ids() -> None:
    rows = gate_rows([rec(DataType.LABELS, i) for i in (10, 9, 100)])
    assert [r["id"] for r in rows] == [9, 10, 100]
    with pytest.raises(ValueError, match="not a Discogs id"):
        gate_rows([Record(id="x", sha256="h", data={})])


def test_batch_parameters_print_as_their_size_only() -> None:
    """The driver formats every statement's parameters for its debug log, on or off:
    a batch's list parameters must be cheap to format, and still plain lists."""
    records = [
        rec(DataType.RELEASES, i, title="T" * 50, artists=[{"id": str(i + 1000), "name": "A"}])
        for i in range(1, 201)
    ]
    lists = [
        gate_rows(records),
        props_rows(DataType.RELEASES, records, {i: (f"e{i}", None) for i in range(1, 201)}),
        *(s.rows for s in removal_statements(DataType.RELEASES, range(1, 201))),
    ]
    for statement in links(DataType.RELEASES, *records):
        lists += [statement.rows, statement.owners or []]
    for value in lists:
        assert isinstance(value, list)
        assert value == list(value)
        assert len(repr({"rows": value})) < 40


def test_release_links_dedup_and_placeholders() -> None:
    record = rec(
        DataType.RELEASES,
        1,
        artists=[{"id": "20", "name": "B"}, {"id": "20", "name": "B"}, {"id": "0", "name": "none"}],
        extraartists=[
            {"id": "10", "name": "Zed", "role": "Mixed By"},
            {"id": "10", "name": "Zed", "role": "Mixed By", "tracks": "A1"},
            {"id": "10", "name": "Zed", "role": "Written-By"},
            {"id": "11", "name": "Y"},
            {"name": "no id", "role": "Other"},
        ],
        labels=[
            {"id": "5", "name": "L", "catno": "SK 026"},
            {"id": "5", "name": "L", "catno": "SK026"},
            {"id": "5", "name": "L", "catno": "SK026"},
            {"id": "6", "name": "M"},
        ],
        master_id="77",
        genres=["Rock", "Rock", "Pop"],
        styles=["Mod"],
    )
    statements = links(DataType.RELEASES, record)
    r = DataType.RELEASES
    assert edges(statements, r, "Artist") == [
        (10, "e1", "credit", "Mixed By"),
        (10, "e1", "credit", "Written-By"),
        (11, "e1", "credit", None),
        (20, "e1", "by", None),
    ]
    assert edges(statements, r, "Label") == [
        (5, "e1", "on", "SK 026"),
        (5, "e1", "on", "SK026"),
        (6, "e1", "on", None),
    ]
    assert edges(statements, r, "Master") == [(77, "e1", "from", None)]
    assert edges(statements, r, "Genre") == [("Pop", "e1", "is", None), ("Rock", "e1", "is", None)]
    assert edges(statements, r, "Style") == [("Mod", "e1", "is", None)]
    assert refs(statements, r, "Artist") == [(10, "Zed"), (11, "Y"), (20, "B")]
    assert refs(statements, r, "Master") == [(77, None)]


def test_statement_order_follows_the_plan() -> None:
    record = rec(DataType.RELEASES, 1, artists=[{"id": "2"}], genres=["G"], master_id="3")
    plan = cypher.PLANS[DataType.RELEASES].links
    assert [s.query for s in links(DataType.RELEASES, record)] == [
        plan["Artist"],
        plan["Master"],
        plan["Genre"],
    ]


def test_placeholder_name_is_the_smallest_seen_whatever_the_order() -> None:
    a = rec(DataType.RELEASES, 1, artists=[{"id": "9", "name": "Zeta"}])
    b = rec(DataType.RELEASES, 2, artists=[{"id": "9", "name": "Alpha"}])
    c = rec(DataType.RELEASES, 3, artists=[{"id": "9"}])
    for order in ([a, b, c], [c, b, a], [b, c, a]):
        assert refs(links(DataType.RELEASES, *order), DataType.RELEASES, "Artist") == [(9, "Alpha")]


def test_rows_sorted_by_target_across_records() -> None:
    records = [rec(DataType.MASTERS, i, artists=[{"id": str(100 - i)}]) for i in range(1, 6)]
    rows = edges(links(DataType.MASTERS, *records), DataType.MASTERS, "Artist")
    assert [r[0] for r in rows] == [95, 96, 97, 98, 99]
    [removal] = removal_statements(DataType.MASTERS, [5, 3, 1, 2, 4, 3])
    assert removal.rows == [{"id": i} for i in range(1, 6)]


def test_edges_to_one_node_sorted_by_owner() -> None:
    records = [rec(DataType.MASTERS, i, artists=[{"id": "7"}]) for i in (30, 4, 200)]
    rows = edges(links(DataType.MASTERS, *records), DataType.MASTERS, "Artist")
    assert [r[1] for r in rows] == ["e4", "e30", "e200"]


def test_only_the_changed_records_link() -> None:
    a = rec(DataType.MASTERS, 1, artists=[{"id": "7"}])
    b = rec(DataType.MASTERS, 2, artists=[{"id": "8"}])
    statements = link_statements(DataType.MASTERS, [a, b], nodes(b))
    assert edges(statements, DataType.MASTERS, "Artist") == [(8, "e2", "by", None)]


def test_artist_links_own_sides() -> None:
    record = rec(
        DataType.ARTISTS,
        1,
        aliases=[{"id": "3", "name": "Al"}, {"id": "3", "name": "Al"}],
        members=[{"id": "4", "name": "Mem"}],
        groups=[{"id": "5", "name": "Grp"}],
    )
    other = rec(DataType.ARTISTS, 4, groups=[{"id": "1", "name": "one"}])
    statements = links(DataType.ARTISTS, record, other)
    # members: the member (t) is MEMBER_OF this group (o); groups: this member (o) -> group
    assert edges(statements, DataType.ARTISTS, "Artist") == [
        (1, "e4", "group", None),
        (3, "e1", "alias", None),
        (4, "e1", "member", None),
        (5, "e1", "group", None),
    ]
    query = cypher.PLANS[DataType.ARTISTS].links["Artist"]
    assert "MERGE (t)-[r:MEMBER_OF]->(o) SET r.from_members = true" in query
    assert "MERGE (o)-[r:MEMBER_OF]->(t) SET r.from_groups = true" in query


def test_label_links_both_sides() -> None:
    record = rec(
        DataType.LABELS,
        10,
        parentLabel={"id": "1", "name": "Parent"},
        sublabels=[{"id": "11", "name": "S"}, {"name": "no id"}],
    )
    statements = links(DataType.LABELS, record)
    assert edges(statements, DataType.LABELS, "Label") == [
        (1, "e10", "parent", None),
        (11, "e10", "sublabel", None),
    ]
    query = cypher.PLANS[DataType.LABELS].links["Label"]
    assert "MERGE (o)-[r:SUBLABEL_OF]->(t) SET r.from_parent_label = true" in query
    assert "MERGE (t)-[r:SUBLABEL_OF]->(o) SET r.from_sublabels = true" in query


def test_nothing_changed_nothing_to_run() -> None:
    for data_type in DataType:
        assert link_statements(data_type, [], {}) == []
        assert removal_statements(data_type, []) == []


def test_raw_shape_gives_the_same_rows() -> None:
    raw = {
        "@id": "8",
        "labels": {"label": {"@id": "5", "@name": "L", "@catno": "C"}},
        "genres": {"genre": "Rock"},
        "artists": {"artist": {"id": "2", "name": "A"}},
    }
    flat = {
        "id": "8",
        "labels": [{"id": "5", "name": "L", "catno": "C"}],
        "genres": ["Rock"],
        "artists": [{"id": "2", "name": "A"}],
    }
    a = links(DataType.RELEASES, normalise(DataType.RELEASES, raw))
    b = links(DataType.RELEASES, normalise(DataType.RELEASES, flat))
    assert a == b


def test_gate_rows_carry_the_dump_version() -> None:
    record = rec(DataType.LABELS, 3, name="L")
    rows = gate_rows([replace(record, version="20260101"), rec(DataType.LABELS, 2)])
    assert [(r["id"], r["version"]) for r in rows] == [(2, None), (3, "20260101")]
    assert "seen" not in props(DataType.LABELS, record), "seen is the gate's, not the record's"


def test_owned_removals_return_their_former_targets() -> None:
    for data_type, plan in cypher.PLANS.items():
        for query in plan.owned:
            assert query.endswith("RETURN elementId(t) AS t"), data_type
        owned = removal_statements(data_type, [1])
        assert all(s.targets for s in owned)
        assert [s.query for s in owned] == list(plan.owned)


def test_gate_on_hash_and_version_order() -> None:
    for query in cypher.GATE.values():
        assert "seen <= row.version" in query
        assert "n.hash <> row.hash" in query
        assert query.endswith("RETURN collect([n.id, added, elementId(n), n.seen]) AS changed")


ROW_STATEMENTS = [
    *BATCH_STATEMENTS,
    *(q for p in cypher.PURGE.values() for q in (p.lock, p.claim, p.demote, p.delete)),
]


@pytest.mark.parametrize("query", ROW_STATEMENTS)
def test_every_keyed_match_names_its_index_seek(query: str) -> None:
    """A kept plan must not depend on the statistics it was made with (see KEEP_PLAN)."""
    matches = re.findall(r"MATCH \((\w*):(\w+) \{(\w+): row\.\w+\}\)", query)
    for var, label, key in matches:
        assert var, query  # a hint needs the node named
        assert f"USING INDEX SEEK {var}:{label}({key})" in query, (var, query)
    # a node matched without its key is found by the element id a statement before
    # returned (a direct lookup, no scan)
    for var in re.findall(r"MATCH \((\w*)(?::\w+)?\)", query):
        assert re.search(rf"MATCH \({var}(?::\w+)?\) WHERE elementId\({var}\) = ", query), query


@pytest.mark.parametrize("data_type", list(DataType))
def test_graph_records_keep_what_the_rows_read(data_type: DataType) -> None:
    # The sample records (every field and shape of the real dump), cut down as the decode
    # workers cut them, give the rows of the whole records.
    whole = [r for r in templates(data_type) if node_id(r.id) is not None]
    slim = [rows.graph_record(data_type, r) for r in whole]
    assert all(
        s.encoded is not None and s.encoded == w.encoded for s, w in zip(slim, whole, strict=True)
    )
    if data_type is DataType.RELEASES:
        cut = sum(len(orjson.dumps(s.data)) for s in slim)
        assert cut < sum(len(w.encoded or b"") for w in whole) / 2
    else:  # small records: kept whole
        assert all(s is w for s, w in zip(slim, whole, strict=True))
    ids = {int(r.id): (f"e{r.id}", "20260101") for r in whole}
    owners = {ident: node for ident, (node, _) in ids.items()}
    for records in (whole, slim):
        assert gate_rows(records) == gate_rows(whole)
        assert props_rows(data_type, records, ids) == props_rows(data_type, whole, ids)
        assert link_statements(data_type, records, owners) == link_statements(
            data_type, whole, owners
        )


def test_graph_record_keeps_a_record_without_its_json_whole() -> None:
    bare = Record(id="1", sha256="h", data={"name": "N", "profile": "p"})
    assert rows.graph_record(DataType.ARTISTS, bare) is bare
    shaped = normalise(DataType.RELEASES, {"id": "2", "formats": {"name": "CD", "qty": "1"}})
    slim = rows.graph_record(DataType.RELEASES, shaped)
    assert props(DataType.RELEASES, slim) == props(DataType.RELEASES, shaped)


def named(statements: list[Statement], data_type: DataType, label: str) -> list[tuple[Any, ...]]:
    """(referenced node, owner's element id, kind, name on the edge) of one label."""
    return edges(statements, data_type, label, last=3)


def test_each_edge_keeps_the_smallest_name_its_record_gave() -> None:
    record = rec(
        DataType.RELEASES,
        1,
        artists=[{"id": "20", "name": "Bee"}, {"id": "20", "name": "Ay"}, {"id": "21"}],
        extraartists=[
            {"id": "20", "name": "Cee", "role": "Mix"},
            {"id": "20", "name": "Dee", "role": "Mix"},
        ],
        labels=[{"id": "5", "name": "L2", "catno": "X"}, {"id": "5", "name": "L1", "catno": "X"}],
        master_id="77",
        genres=["Rock"],
    )
    r = DataType.RELEASES
    statements = links(r, record)
    assert named(statements, r, "Artist") == [
        (20, "e1", "by", "Ay"),
        (20, "e1", "credit", "Cee"),
        (21, "e1", "by", None),  # a reference without a name: none on the edge
    ]
    assert named(statements, r, "Label") == [(5, "e1", "on", "L1")]
    assert named(statements, r, "Master") == [(77, "e1", "from", None)]
    assert named(statements, r, "Genre") == [("Rock", "e1", "is", None)]
    assert refs(statements, r, "Artist") == [(20, "Ay"), (21, None)]
    # whatever order the references come in
    flipped = replace(record, data={**record.data, "artists": record.data["artists"][::-1]})
    assert named(links(r, flipped), r, "Artist") == named(statements, r, "Artist")


def test_two_sided_edges_keep_the_name_each_side_gave() -> None:
    group = rec(DataType.ARTISTS, 1, members=[{"id": "4", "name": "Mem"}])
    member = rec(DataType.ARTISTS, 4, groups=[{"id": "1", "name": "Grp"}, {"id": "1"}])
    alias = rec(DataType.ARTISTS, 6, aliases=[{"id": "3", "name": "Al"}])
    a = DataType.ARTISTS
    assert named(links(a, group, member, alias), a, "Artist") == [
        (1, "e4", "group", "Grp"),
        (3, "e6", "alias", "Al"),
        (4, "e1", "member", "Mem"),
    ]
    sub = rec(DataType.LABELS, 10, parentLabel={"id": "1", "name": "Parent"})
    parent = rec(DataType.LABELS, 1, sublabels=[{"id": "10", "name": "Sub"}])
    assert named(links(DataType.LABELS, sub, parent), DataType.LABELS, "Label") == [
        (1, "e10", "parent", "Parent"),
        (10, "e1", "sublabel", "Sub"),
    ]


@pytest.mark.parametrize(
    ("data_type", "label", "kind", "action"),
    [
        (DataType.RELEASES, "Artist", "by", "CREATE (o)-[:BY {name: e[3]}]->(t)"),
        (DataType.MASTERS, "Artist", "by", "CREATE (o)-[:BY {name: e[3]}]->(t)"),
        (
            DataType.RELEASES,
            "Artist",
            "credit",
            "CREATE (t)-[:CREDITED_ON {role: e[2], name: e[3]}]->(o)",
        ),
        (DataType.RELEASES, "Label", "on", "CREATE (o)-[:ON {catno: e[2], name: e[3]}]->(t)"),
        (DataType.ARTISTS, "Artist", "alias", "CREATE (o)-[:ALIAS_OF {name: e[3]}]->(t)"),
        (
            DataType.ARTISTS,
            "Artist",
            "member",
            "MERGE (t)-[r:MEMBER_OF]->(o) SET r.from_members = true, r.member_name = e[3]",
        ),
        (
            DataType.ARTISTS,
            "Artist",
            "group",
            "MERGE (o)-[r:MEMBER_OF]->(t) SET r.from_groups = true, r.group_name = e[3]",
        ),
        (
            DataType.LABELS,
            "Label",
            "parent",
            "MERGE (o)-[r:SUBLABEL_OF]->(t) SET r.from_parent_label = true, r.parent_name = e[3]",
        ),
        (
            DataType.LABELS,
            "Label",
            "sublabel",
            "MERGE (t)-[r:SUBLABEL_OF]->(o) SET r.from_sublabels = true, r.sublabel_name = e[3]",
        ),
    ],
)
def test_edge_statements_write_the_name(
    data_type: DataType, label: str, kind: str, action: str
) -> None:
    assert action in cypher.PLANS[data_type].links[label]
    if kind in names.SIDE:
        assert names.MERGE_SIDE[kind] == action
        assert names.SIDE[kind] == tuple(re.findall(r"r\.(\w+) = ", action))


def test_a_withdrawn_side_takes_its_name_and_returns_its_target_always() -> None:
    owned = [q for p in (DataType.ARTISTS, DataType.LABELS) for q in cypher.PLANS[p].owned]
    unflags = [q for q in owned if "REMOVE" in q]
    assert len(unflags) == 4
    for kind, (flag, name) in names.SIDE.items():
        [query] = [q for q in unflags if f"WHERE r.{flag} REMOVE" in q]
        assert f"REMOVE r.{flag}, r.{name} WITH r, t " in query, kind
        # the edge goes only when no side is left, the target is returned either way
        assert "CALL (r) { WITH r WHERE r." in query
        assert query.endswith("IS NULL DELETE r } RETURN elementId(t) AS t")


def test_a_placeholder_is_named_by_the_smallest_name_on_its_edges() -> None:
    for pattern in (
        "[(t)<-[r:BY|ON|ALIAS_OF]-() | r.name]",
        "[(t)-[r:CREDITED_ON]->() | r.name]",
        "[(t)-[r:MEMBER_OF]->() | r.member_name]",
        "[(t)<-[r:MEMBER_OF]-() | r.group_name]",
        "[(t)-[r:SUBLABEL_OF]->() | r.sublabel_name]",
        "[(t)<-[r:SUBLABEL_OF]-() | r.parent_name]",
    ):
        assert pattern in cypher.RENAME
        # a placeholder that still has an edge with its name keeps it, unread further
        kept = pattern.replace("[", "EXISTS { ", 1).replace("() | r.", "() WHERE r.")
        assert f"AND NOT {kept.removesuffix(']')} = t.name }} " in cypher.RENAME
    assert "AND t.placeholder AND (t:Artist OR t:Label) AND NOT EXISTS {" in cypher.RENAME
    assert " SET t.name = reduce(m = null, x IN [(t)<-" in cypher.RENAME
    for data_type in DataType:  # demoted bare, then named by RENAME as the former targets
        demote = cypher.PURGE[data_type].demote
        assert demote.endswith("SET n = {id: n.id, placeholder: true} RETURN elementId(n) AS node")


def test_every_named_reference_locks_its_placeholder_before_reading_its_name() -> None:
    for data_type, plan in cypher.PLANS.items():
        for label, query in plan.links.items():
            if label in ("Genre", "Style"):
                assert names.PLACEHOLDER not in query
                continue
            assert names.PLACEHOLDER in query, (data_type, label)
    locking = names.PLACEHOLDER
    assert "t.placeholder AND row.name IS NOT NULL AS named " in locking
    assert "CASE WHEN named THEN [1] ELSE [] END | SET t.locked_ = true" in locking
    assert "MATCH (u) WHERE elementId(u) = elementId(t) AND u.placeholder " in locking
