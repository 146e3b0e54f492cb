"""REFERENCE ONLY: the batch statements of graphinator as they were on main at 275787c.

The graph-cost benches (:mod:`bench.graph_cost`, :mod:`bench.graph_statements`) run these
beside today's statements on the same records in the same run, and
tests/integration/test_graph_reference.py checks that both make the same graph. Never
edit them: they are the baseline the ratios are measured against. What has not changed
since (the labels, ``_seek``, the removal of owned edges, ``ORPHANS``) is imported.

The batch write ran :data:`MERGE_NODES` (the hash gate, carrying every record's
properties), then, for the changed records, :attr:`Plan.owned`, the placeholders, the
tags, one statement per edge kind (each edge found by two index seeks) and ``ORPHANS``.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.records import DataType
from graphinator.cypher import (
    ARTIST,
    GENRE,
    KEEP_PLAN,
    LABEL,
    MASTER,
    NODE_LABEL,
    ORPHANS,
    RELEASE,
    STYLE,
    _seek,
)
from graphinator.cypher import PLANS as TODAY

__all__ = ["MERGE_NODES", "ORPHANS", "PLACEHOLDER", "PLANS", "TAG"]

MERGE_NODES: dict[DataType, str] = {
    data_type: f"{KEEP_PLAN}UNWIND $rows AS row MERGE (n:{label} {{id: row.id}}) "
    "WITH n, row, coalesce(n.placeholder, true) AS added, n.seen AS seen "
    "WITH n, row, added, seen, "
    "(seen IS NULL OR row.version IS NULL OR seen <= row.version) AS in_order "
    "WITH n, row, added, seen, in_order, "
    "in_order AND (n.hash IS NULL OR n.hash <> row.hash) AS changed "
    "FOREACH (_ IN CASE WHEN changed THEN [1] ELSE [] END | "
    "SET n = row.props SET n.seen = coalesce(row.version, seen)) "
    "FOREACH (_ IN CASE WHEN in_order AND NOT changed AND row.version IS NOT NULL "
    "AND (seen IS NULL OR seen < row.version) THEN [1] ELSE [] END | "
    "SET n.seen = row.version) "
    "WITH n, added, changed WHERE changed RETURN n.id AS id, added"
    for data_type, label in NODE_LABEL.items()
}

# A referenced node that has no record yet: it keeps the smallest name any reference
# gave it (so the result does not depend on arrival order) until its record completes it.
PLACEHOLDER: dict[str, str] = {
    label: f"{KEEP_PLAN}UNWIND $rows AS row MERGE (n:{label} {{id: row.id}}) "
    "ON CREATE SET n.placeholder = true, n.name = row.name "
    "WITH n, row WHERE n.placeholder AND row.name IS NOT NULL "
    "AND (n.name IS NULL OR row.name < n.name) SET n.name = row.name"
    for label in (ARTIST, LABEL, MASTER)
}
TAG: dict[str, str] = {
    label: f"{KEEP_PLAN}UNWIND $rows AS row MERGE (:{label} {{name: row.name}})"
    for label in (GENRE, STYLE)
}


def _create(src: str, rel: str, dst: str, key: str = "id", props: str = "") -> str:
    return (
        f"{KEEP_PLAN}UNWIND $rows AS row {_seek('s', src, 'row.src')}"
        f"{_seek('t', dst, 'row.dst', key)}CREATE (s)-[:{rel}{props}]->(t)"
    )


def _flagged(label: str, rel: str, flag: str) -> str:
    return (
        f"{KEEP_PLAN}UNWIND $rows AS row {_seek('s', label, 'row.src')}"
        f"{_seek('t', label, 'row.dst')}MERGE (s)-[r:{rel}]->(t) SET r.{flag} = true"
    )


# BY and CREDITED_ON both lock artists: one statement, rows sorted by artist, one lock order.
_RELEASE_ARTIST = (
    f"{KEEP_PLAN}UNWIND $rows AS row {_seek('s', RELEASE, 'row.src')}"
    f"{_seek('t', ARTIST, 'row.dst')}"
    "FOREACH (_ IN CASE WHEN row.kind = 'by' THEN [1] ELSE [] END | CREATE (s)-[:BY]->(t)) "
    "FOREACH (_ IN CASE WHEN row.kind = 'credit' THEN [1] ELSE [] END | "
    "CREATE (t)-[:CREDITED_ON {role: row.prop}]->(s))"
)


@dataclass(frozen=True, slots=True)
class Plan:
    """What a record of one type owns (removal statements, each returning the former
    targets as ``t``) and the edge statements."""

    owned: tuple[str, ...]
    edges: tuple[tuple[str, str], ...]  # (edge kind, statement), in execution order


PLANS: dict[DataType, Plan] = {
    DataType.RELEASES: Plan(
        owned=TODAY[DataType.RELEASES].owned,
        edges=(
            ("release_artist", _RELEASE_ARTIST),
            ("release_label", _create(RELEASE, "ON", LABEL, props=" {catno: row.prop}")),
            ("release_master", _create(RELEASE, "DERIVED_FROM", MASTER)),
            ("release_genre", _create(RELEASE, "IS", GENRE, key="name")),
            ("release_style", _create(RELEASE, "IS", STYLE, key="name")),
        ),
    ),
    DataType.MASTERS: Plan(
        owned=TODAY[DataType.MASTERS].owned,
        edges=(
            ("master_artist", _create(MASTER, "BY", ARTIST)),
            ("master_genre", _create(MASTER, "IS", GENRE, key="name")),
            ("master_style", _create(MASTER, "IS", STYLE, key="name")),
        ),
    ),
    DataType.ARTISTS: Plan(
        owned=TODAY[DataType.ARTISTS].owned,
        edges=(
            ("alias", _create(ARTIST, "ALIAS_OF", ARTIST)),
            ("member", _flagged(ARTIST, "MEMBER_OF", "from_members")),
            ("group", _flagged(ARTIST, "MEMBER_OF", "from_groups")),
        ),
    ),
    DataType.LABELS: Plan(
        owned=TODAY[DataType.LABELS].owned,
        edges=(
            ("parent", _flagged(LABEL, "SUBLABEL_OF", "from_parent_label")),
            ("sublabel", _flagged(LABEL, "SUBLABEL_OF", "from_sublabels")),
        ),
    ),
}
