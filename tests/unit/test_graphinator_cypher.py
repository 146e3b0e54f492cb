"""graphinator.cypher and graphinator.rows: statements are constants with parameters only;
rows are built, deduplicated and sorted as docs/graph-model.md says. No I/O."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest

from common.normalise import normalise
from common.records import DataType, Record
from graphinator import cypher, rows
from graphinator.rows import Statement, link_statements, node_id, node_rows


def rec(data_type: DataType, ident: int | str, **fields: Any) -> Record:
    return normalise(data_type, {"id": str(ident), **fields})


def by_query(statements: list[Statement]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for statement in statements:
        assert statement.query not in out, "one statement per kind"
        out[statement.query] = statement.rows
    return out


def edges(statements: list[Statement], query: str) -> list[tuple[Any, ...]]:
    rows = by_query(statements).get(query, [])
    return [(r["src"], r["dst"], r["kind"], r["prop"]) for r in rows]


def plan_query(data_type: DataType, kind: str) -> str:
    return dict(cypher.PLANS[data_type].edges)[kind]


ALL_STATEMENTS = [
    *cypher.CONSTRAINTS,
    *cypher.MERGE_NODES.values(),
    *cypher.PLACEHOLDER.values(),
    *cypher.TAG.values(),
    *(q for plan in cypher.PLANS.values() for q in plan.owned),
    *(q for plan in cypher.PLANS.values() for _, q in plan.edges),
    cypher.ORPHANS,
    *(q for p in cypher.PURGE.values() for q in (p.claim, p.demote, p.delete)),
]
# Whole-label statements of the purge and the pipeline state: named parameters only.
SCAN_STATEMENTS = [
    *(q for p in cypher.PURGE.values() for q in (p.facts, p.candidates)),
    cypher.FILE_COMPLETE_SET,
    cypher.FILE_COMPLETE_GET,
]


def _fixed_names_only(query: str) -> None:
    assert "'" not in query.replace("'by'", "").replace("'credit'", "")
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
    *cypher.MERGE_NODES.values(),
    *cypher.PLACEHOLDER.values(),
    *cypher.TAG.values(),
    *(q for plan in cypher.PLANS.values() for q in plan.owned),
    *(q for plan in cypher.PLANS.values() for _, q in plan.edges),
    cypher.ORPHANS,
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
    [row] = node_rows(DataType.RELEASES, [record])
    assert row == {
        "id": 5,
        "hash": record.stored_hash,
        "version": None,
        "props": {
            "id": 5,
            "hash": record.stored_hash,
            "placeholder": False,
            "title": "T",
            "year": 1999,
            "released": "1999-03-00",
            "country": "UK",
            "formats": ["Vinyl", "CD"],
            "data_quality": "Correct",
            "status": "Accepted",
            "is_main_release": True,
        },
    }


@pytest.mark.parametrize(
    ("released", "year"),
    [("1999", 1999), ("Mar 1999", None), ("0000-00-00", None), ("2001-00-00", 2001), (None, None)],
)
def test_release_year(released: str | None, year: int | None) -> None:
    fields = {"released": released} if released else {}
    [row] = node_rows(DataType.RELEASES, [rec(DataType.RELEASES, 1, **fields)])
    assert row["props"].get("year") == year


def test_minimal_records_have_only_the_base_properties() -> None:
    for data_type in DataType:
        [row] = node_rows(data_type, [rec(data_type, 3)])
        assert row["props"] == {"id": 3, "hash": row["hash"], "placeholder": False}
        assert link_statements(data_type, [rec(data_type, 3)]) == [
            Statement(q, [{"id": 3}], targets=True) for q in cypher.PLANS[data_type].owned
        ]


def test_master_artist_and_label_properties() -> None:
    [m] = node_rows(
        DataType.MASTERS, [rec(DataType.MASTERS, 1, title="M", year="1969", main_release="12")]
    )
    assert m["props"] | {"hash": None} == {
        "id": 1,
        "hash": None,
        "placeholder": False,
        "title": "M",
        "year": 1969,
        "main_release": 12,
    }
    [a] = node_rows(
        DataType.ARTISTS,
        [
            rec(
                DataType.ARTISTS,
                2,
                name="N",
                realname="R",
                namevariations=["x", "x", "y"],
                profile="p",
            )
        ],
    )
    assert a["props"]["namevariations"] == ["x", "y"]
    assert "profile" not in a["props"]
    [lab] = node_rows(DataType.LABELS, [rec(DataType.LABELS, 3, name="L", contactinfo="c")])
    assert set(lab["props"]) == {"id", "hash", "placeholder", "name"}


def test_node_rows_sorted_by_numeric_id_and_reject_bad_ids() -> None:
    rows = node_rows(DataType.LABELS, [rec(DataType.LABELS, i) for i in (10, 9, 100)])
    assert [r["id"] for r in rows] == [9, 10, 100]
    with pytest.raises(ValueError, match="not a Discogs id"):
        node_rows(DataType.LABELS, [Record(id="x", sha256="h", data={})])


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
    statements = link_statements(DataType.RELEASES, [record])
    queries = by_query(statements)
    assert edges(statements, plan_query(DataType.RELEASES, "release_artist")) == [
        (1, 10, "credit", "Mixed By"),
        (1, 10, "credit", "Written-By"),
        (1, 11, "credit", None),
        (1, 20, "by", None),
    ]
    assert edges(statements, plan_query(DataType.RELEASES, "release_label")) == [
        (1, 5, "", "SK 026"),
        (1, 5, "", "SK026"),
        (1, 6, "", None),
    ]
    assert edges(statements, plan_query(DataType.RELEASES, "release_master")) == [(1, 77, "", None)]
    assert edges(statements, plan_query(DataType.RELEASES, "release_genre")) == [
        (1, "Pop", "", None),
        (1, "Rock", "", None),
    ]
    assert queries[cypher.PLACEHOLDER["Artist"]] == [
        {"id": 10, "name": "Zed"},
        {"id": 11, "name": "Y"},
        {"id": 20, "name": "B"},
    ]
    assert queries[cypher.PLACEHOLDER["Master"]] == [{"id": 77, "name": None}]
    assert queries[cypher.TAG["Genre"]] == [{"name": "Pop"}, {"name": "Rock"}]
    assert queries[cypher.TAG["Style"]] == [{"name": "Mod"}]


def test_statement_order_deletes_then_nodes_then_edges() -> None:
    record = rec(DataType.RELEASES, 1, artists=[{"id": "2"}], genres=["G"], master_id="3")
    queries = [s.query for s in link_statements(DataType.RELEASES, [record])]
    owned = list(cypher.PLANS[DataType.RELEASES].owned)
    assert queries[: len(owned)] == owned
    assert queries[len(owned) :] == [
        cypher.PLACEHOLDER["Artist"],
        cypher.PLACEHOLDER["Master"],
        cypher.TAG["Genre"],
        plan_query(DataType.RELEASES, "release_artist"),
        plan_query(DataType.RELEASES, "release_master"),
        plan_query(DataType.RELEASES, "release_genre"),
    ]


def test_placeholder_name_is_the_smallest_seen_whatever_the_order() -> None:
    a = rec(DataType.RELEASES, 1, artists=[{"id": "9", "name": "Zeta"}])
    b = rec(DataType.RELEASES, 2, artists=[{"id": "9", "name": "Alpha"}])
    c = rec(DataType.RELEASES, 3, artists=[{"id": "9"}])
    for order in ([a, b, c], [c, b, a], [b, c, a]):
        rows = by_query(link_statements(DataType.RELEASES, order))[cypher.PLACEHOLDER["Artist"]]
        assert rows == [{"id": 9, "name": "Alpha"}]


def test_rows_sorted_by_target_across_records() -> None:
    records = [rec(DataType.MASTERS, i, artists=[{"id": str(100 - i)}]) for i in range(1, 6)]
    rows = edges(
        link_statements(DataType.MASTERS, records), plan_query(DataType.MASTERS, "master_artist")
    )
    assert [r[1] for r in rows] == [95, 96, 97, 98, 99]
    ids = by_query(link_statements(DataType.MASTERS, records))[
        cypher.PLANS[DataType.MASTERS].owned[0]
    ]
    assert ids == [{"id": i} for i in range(1, 6)]


def test_artist_links_own_sides() -> None:
    record = rec(
        DataType.ARTISTS,
        1,
        aliases=[{"id": "3", "name": "Al"}, {"id": "3", "name": "Al"}],
        members=[{"id": "4", "name": "Mem"}],
        groups=[{"id": "5", "name": "Grp"}],
    )
    other = rec(DataType.ARTISTS, 4, groups=[{"id": "1", "name": "one"}])
    statements = link_statements(DataType.ARTISTS, [record, other])
    assert edges(statements, plan_query(DataType.ARTISTS, "alias")) == [(1, 3, "", None)]
    # members: member -> this group; groups: this member -> group
    assert edges(statements, plan_query(DataType.ARTISTS, "member")) == [(4, 1, "", None)]
    assert edges(statements, plan_query(DataType.ARTISTS, "group")) == [
        (4, 1, "", None),
        (1, 5, "", None),
    ]
    # the batch's own artists are complete already: no placeholder rows for them
    assert by_query(statements)[cypher.PLACEHOLDER["Artist"]] == [
        {"id": 3, "name": "Al"},
        {"id": 5, "name": "Grp"},
    ]


def test_label_links_both_sides() -> None:
    record = rec(
        DataType.LABELS,
        10,
        parentLabel={"id": "1", "name": "Parent"},
        sublabels=[{"id": "11", "name": "S"}, {"name": "no id"}],
    )
    statements = link_statements(DataType.LABELS, [record])
    assert edges(statements, plan_query(DataType.LABELS, "parent")) == [(10, 1, "", None)]
    assert edges(statements, plan_query(DataType.LABELS, "sublabel")) == [(11, 10, "", None)]


def test_nothing_changed_nothing_to_run() -> None:
    for data_type in DataType:
        assert link_statements(data_type, []) == []


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
    a = link_statements(DataType.RELEASES, [normalise(DataType.RELEASES, raw)])
    b = link_statements(DataType.RELEASES, [normalise(DataType.RELEASES, flat)])
    assert a == b


def test_node_rows_carry_the_dump_version() -> None:
    record = rec(DataType.LABELS, 3, name="L")
    rows = node_rows(
        DataType.LABELS, [replace(record, version="20260101"), rec(DataType.LABELS, 2)]
    )
    assert [(r["id"], r["version"]) for r in rows] == [(2, None), (3, "20260101")]
    assert "seen" not in rows[1]["props"], "seen is set by the statement, not the record"


def test_owned_removals_return_their_former_targets() -> None:
    for data_type, plan in cypher.PLANS.items():
        for query in plan.owned:
            assert query.endswith("RETURN elementId(t) AS t"), data_type
        record = rec(data_type, 1)
        owned = [s for s in link_statements(data_type, [record]) if s.targets]
        assert [s.query for s in owned] == list(plan.owned)


def test_merge_gates_on_hash_and_version_order() -> None:
    for query in cypher.MERGE_NODES.values():
        assert "seen <= row.version" in query
        assert "n.hash <> row.hash" in query
        assert query.endswith("RETURN n.id AS id, added")


ROW_STATEMENTS = [
    *BATCH_STATEMENTS,
    *(q for p in cypher.PURGE.values() for q in (p.claim, p.demote, p.delete)),
]


@pytest.mark.parametrize("query", ROW_STATEMENTS)
def test_every_keyed_match_names_its_index_seek(query: str) -> None:
    """A kept plan must not depend on the statistics it was made with (see KEEP_PLAN)."""
    matches = re.findall(r"MATCH \((\w*):(\w+) \{(\w+): row\.\w+\}\)", query)
    for var, label, key in matches:
        assert var, query  # a hint needs the node named
        assert f"USING INDEX SEEK {var}:{label}({key})" in query, (var, query)
    unkeyed = re.findall(r"MATCH \(\w*(?::\w+)?\)", query)
    assert unkeyed == (["MATCH (t)"] if query == cypher.ORPHANS else []), query
