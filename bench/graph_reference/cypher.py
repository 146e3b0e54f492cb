"""REFERENCE ONLY: graphinator's Cypher statements frozen as they were on main at 275787c.

The graph-cost bench (:mod:`bench.graph_cost`) runs these beside today's statements on the
same records in the same run. Never edit them: they are the baseline the ratios are
measured against. The text below is the original module's.

graphinator's Cypher statements. Pure: constants only, no I/O.

The graph model, and which record owns which relationship, is in docs/graph-model.md.
Every statement is a constant string built at import time from the fixed labels and
relationship types below; every value travels as a parameter (``$rows``, or ``$version``
/ ``$data_type`` for the per-type purge and state statements). Rows are built in
:mod:`graphinator.rows`; the batch write runs :data:`MERGE_NODES` (which returns the ids
whose hash changed), then, for the changed records only, :attr:`Plan.owned` (returning
the nodes the removed edges pointed at), placeholders, tags, the edges, and finally
:data:`ORPHANS` on those former targets. The purge of records absent from a new dump
version uses :data:`PURGE` (see :mod:`graphinator.purge`).
"""

from __future__ import annotations

from dataclasses import dataclass

from common.records import DataType

ARTIST, LABEL, MASTER, RELEASE = "Artist", "Label", "Master", "Release"
GENRE, STYLE = "Genre", "Style"
STATE = "PipelineState"
NODE_LABEL: dict[DataType, str] = {
    DataType.ARTISTS: ARTIST,
    DataType.LABELS: LABEL,
    DataType.MASTERS: MASTER,
    DataType.RELEASES: RELEASE,
}
# Types whose records link to records of the same type (members, groups and aliases;
# sublabels and parent labels). Two concurrent batches of one of them each lock their own
# nodes first and then the other's as link targets, so they deadlock; graphinator writes
# them one batch at a time (measured: artists 5.1k -> 5.9k/s from batch messages, 2.7k ->
# 3.9k/s from one-record messages, with no retries left).
SELF_LINKED: frozenset[DataType] = frozenset({DataType.ARTISTS, DataType.LABELS})
_KEYS = [
    *((label, "id") for label in NODE_LABEL.values()),
    (GENRE, "name"),
    (STYLE, "name"),
    (STATE, "data_type"),
]
CONSTRAINTS: tuple[str, ...] = tuple(
    f"CREATE CONSTRAINT {label.lower()}_{key} IF NOT EXISTS "
    f"FOR (n:{label}) REQUIRE n.{key} IS UNIQUE"
    for label, key in _KEYS
)

# Every batch statement keeps its first plan. While a first load grows the graph from
# nothing, Neo4j would replan the cached statements every 10 s as their statistics
# diverge, and with a dozen statements per batch that stalled writes for seconds (2-3 s
# batches, several in a row, in the bench). A kept plan must then be good whatever the
# statistics were when it was made, so every MATCH on a keyed node names its unique
# index seek (:func:`_seek`): on a graph of a few hundred nodes just after it was emptied,
# the planner otherwise chose to scan the whole index for each row and filter it, and
# the kept plan grew with the graph (batches 0.8 s -> 17 s in the bench).
KEEP_PLAN = "CYPHER replan=skip "


_SEEK_VARS = frozenset({"o", "s", "t", "n"})
_SEEK_VALUES = frozenset({"row.id", "row.src", "row.dst"})


def _seek(var: str, label: str, value: str, key: str = "id", pattern: str = "") -> str:
    """``MATCH`` of the one node whose unique ``key`` is ``value``, by its index seek.

    Every argument comes from the fixed lists of this module (checked here, at import).
    """
    if var not in _SEEK_VARS or value not in _SEEK_VALUES or (label, key) not in _KEYS:
        raise ValueError(f"not a fixed node match: {var}, {label}, {key}, {value}")
    return (
        f"MATCH ({var}:{label} {{{key}: {value}}}){pattern} USING INDEX SEEK {var}:{label}({key}) "
    )


# The hash gate, in one statement (no read-then-write race). A record rewrites its node
# when the stored hash is absent or different AND the node was not stored from a newer
# dump version (`seen`, YYYYMMDD, compared as text); the returned ids are the changed
# records, `added` telling whether the node was new or a placeholder. An unchanged
# record only moves `seen` forward, touching no relationship. `SET n = ...` drops
# properties a record lost; a record without a version keeps the stored `seen`.
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

# Former targets of removed edges (element ids, valid within the transaction) that are
# now placeholders or tags with no relationship left: a fresh load would not have them.
# The edge removal locked them, so no concurrent transaction can link them unseen.
ORPHANS = (
    f"{KEEP_PLAN}UNWIND $rows AS row MATCH (t) WHERE elementId(t) = row.id "
    "AND (t.placeholder OR t:Genre OR t:Style) AND NOT EXISTS { (t)--() } "
    "DELETE t RETURN count(t) AS deleted"
)


def _delete(label: str, pattern: str) -> str:
    return (
        f"{KEEP_PLAN}UNWIND $rows AS row {_seek('o', label, 'row.id', pattern=pattern)}"
        "DELETE r RETURN elementId(t) AS t"
    )


def _unflag(label: str, pattern: str, rel: str, flag: str, other: str) -> str:
    """Withdraw this record's definition of a two-sided edge; delete it if none is left."""
    return (
        f"{KEEP_PLAN}UNWIND $rows AS row "
        f"{_seek('o', label, 'row.id', pattern=pattern.format(rel=rel))}"
        f"WHERE r.{flag} REMOVE r.{flag} WITH r, t WHERE r.{other} IS NULL "
        "DELETE r RETURN elementId(t) AS t"
    )


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


_OUT, _IN = "-[r:{rel}]->(t)", "<-[r:{rel}]-(t)"
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
        owned=(
            _delete(RELEASE, "-[r:BY|ON|DERIVED_FROM|IS]->(t)"),
            _delete(RELEASE, "<-[r:CREDITED_ON]-(t:Artist)"),
        ),
        edges=(
            ("release_artist", _RELEASE_ARTIST),
            ("release_label", _create(RELEASE, "ON", LABEL, props=" {catno: row.prop}")),
            ("release_master", _create(RELEASE, "DERIVED_FROM", MASTER)),
            ("release_genre", _create(RELEASE, "IS", GENRE, key="name")),
            ("release_style", _create(RELEASE, "IS", STYLE, key="name")),
        ),
    ),
    DataType.MASTERS: Plan(
        owned=(_delete(MASTER, "-[r:BY|IS]->(t)"),),
        edges=(
            ("master_artist", _create(MASTER, "BY", ARTIST)),
            ("master_genre", _create(MASTER, "IS", GENRE, key="name")),
            ("master_style", _create(MASTER, "IS", STYLE, key="name")),
        ),
    ),
    DataType.ARTISTS: Plan(
        owned=(
            _delete(ARTIST, "-[r:ALIAS_OF]->(t:Artist)"),
            _unflag(ARTIST, _IN, "MEMBER_OF", "from_members", "from_groups"),
            _unflag(ARTIST, _OUT, "MEMBER_OF", "from_groups", "from_members"),
        ),
        edges=(
            ("alias", _create(ARTIST, "ALIAS_OF", ARTIST)),
            ("member", _flagged(ARTIST, "MEMBER_OF", "from_members")),
            ("group", _flagged(ARTIST, "MEMBER_OF", "from_groups")),
        ),
    ),
    DataType.LABELS: Plan(
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
class PurgeStatements:
    """The purge of one node label (see graphinator/purge.py for the procedure)."""

    facts: str  # $version -> stored (complete nodes), seen (stamped with $version)
    candidates: str  # $version -> ids of complete nodes not seen in $version or later
    claim: str  # rows {id, version} -> ids still candidates, now locked
    demote: str  # rows {id}: still referenced -> placeholder (id, name kept)
    delete: str  # rows {id}: referenced by nothing -> deleted


def _purge(label: str) -> PurgeStatements:
    stale = "n.placeholder = false AND (n.seen IS NULL OR n.seen < {v})"
    one = f"UNWIND $rows AS row {_seek('n', label, 'row.id')}"
    return PurgeStatements(
        facts=f"MATCH (n:{label}) WHERE n.placeholder = false RETURN count(n) AS stored, "
        "sum(CASE WHEN n.seen = $version THEN 1 ELSE 0 END) AS seen",
        candidates=f"MATCH (n:{label}) WHERE {stale.format(v='$version')} "
        "RETURN n.id AS id ORDER BY id",
        claim=f"{one}WHERE {stale.format(v='row.version')} SET n.placeholder = true "
        "RETURN n.id AS id",
        demote=f"{one}WHERE EXISTS {{ (n)--() }} "
        "SET n = {id: n.id, placeholder: true, name: n.name} RETURN count(n) AS demoted",
        delete=f"{one}WHERE NOT EXISTS {{ (n)--() }} DELETE n RETURN count(n) AS deleted",
    )


PURGE: dict[DataType, PurgeStatements] = {
    data_type: _purge(label) for data_type, label in NODE_LABEL.items()
}

# The dump version of the type's last file_complete, kept in the graph so that a
# restarted consumer still knows it when extraction_complete arrives.
FILE_COMPLETE_SET = f"MERGE (s:{STATE} {{data_type: $data_type}}) SET s.file_complete = $version"
FILE_COMPLETE_GET = f"MATCH (s:{STATE} {{data_type: $data_type}}) RETURN s.file_complete AS v"
