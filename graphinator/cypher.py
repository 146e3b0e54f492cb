"""graphinator's Cypher statements. Pure: constants only, no I/O.

The graph model, and which record owns which relationship, is in docs/graph-model.md.
Every statement is a constant string built at import time from the fixed labels and
relationship types below; every value travels as a parameter (``$rows``, or ``$version``
/ ``$data_type`` for the per-type purge and state statements). Rows are built in
:mod:`graphinator.rows`; the batch write runs :data:`GATE` (which returns the records
whose hash changed), then, for those only, :data:`NODE_PROPS`, :attr:`Plan.owned` for the
ones that were complete before (returning the nodes the removed edges pointed at),
:attr:`Plan.links` (placeholders, tags and edges, one statement per referenced label),
and finally :data:`ORPHANS` and :data:`RENAME` on those former targets. The purge of
records absent from a new dump version uses :data:`PURGE` (see :mod:`graphinator.purge`).
Placeholder names and the names on edges: :mod:`graphinator.names`.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.records import DataType
from graphinator import names

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


# The hash gate. A record rewrites its node when the stored hash is absent or different
# AND the node was not stored from a newer dump version (`seen`, YYYYMMDD, compared as
# text); it returns one row, the list of the changed records as [id, added, node, seen]:
# `added` tells whether the node was new or a placeholder, `node` is its element id and
# `seen` its version from now on (one list, not a row each: the driver handles every row
# it receives as a message of its own, and a first load changes every record). A node
# that exists is locked before the MERGE reads it (a property written and removed: MERGE
# alone locks only what it creates), so another replica's gate or a purge in flight on
# it is waited for and its outcome read (a node the purge deleted meanwhile is created
# anew), not a value it is about to replace. An unchanged record only moves `seen`
# forward, touching no relationship. Only the ids, hashes and versions travel here: the
# properties of the (in an update, few) changed records follow in :data:`NODE_PROPS`.
GATE: dict[DataType, str] = {
    data_type: f"{KEEP_PLAN}UNWIND $rows AS row OPTIONAL {_seek('o', label, 'row.id')}"
    "FOREACH (_ IN CASE WHEN o IS NULL THEN [] ELSE [1] END | "
    "SET o.locked_ = true REMOVE o.locked_) "
    f"WITH row MERGE (n:{label} {{id: row.id}}) "
    "WITH n, row, coalesce(n.placeholder, true) AS added, n.seen AS seen "
    "WITH n, row, added, seen, "
    "(seen IS NULL OR row.version IS NULL OR seen <= row.version) AS in_order "
    "WITH n, row, added, seen, in_order, "
    "in_order AND (n.hash IS NULL OR n.hash <> row.hash) AS changed "
    "FOREACH (_ IN CASE WHEN changed THEN [1] ELSE [] END | "
    "SET n.seen = coalesce(row.version, seen)) "
    "FOREACH (_ IN CASE WHEN in_order AND NOT changed AND row.version IS NOT NULL "
    "AND (seen IS NULL OR seen < row.version) THEN [1] ELSE [] END | "
    "SET n.seen = row.version) "
    "WITH n, added, changed WHERE changed "
    "RETURN collect([n.id, added, elementId(n), n.seen]) AS changed"
    for data_type, label in NODE_LABEL.items()
}
# A changed record's properties, `seen` among them: `SET n = ...` drops properties a
# record lost.
NODE_PROPS: dict[DataType, str] = {
    data_type: f"{KEEP_PLAN}UNWIND $rows AS row MATCH (n:{label}) "
    "WHERE elementId(n) = row.node SET n = row.props"
    for data_type, label in NODE_LABEL.items()
}

# Former targets of removed edges (element ids, valid within the transaction) that are
# now placeholders or tags with no relationship left: a fresh load would not have them.
# ORPHANS_LOCK locks them first (a property written and removed): an edge removal alone
# did not keep a concurrent purge or delete of the target from demoting it to a
# placeholder unseen (it saw the edge, this transaction saw a complete node), which left
# unreferenced placeholders behind; locked, the later of the two sees what the other did.
ORPHANS_LOCK = (
    f"{KEEP_PLAN}UNWIND $rows AS row MATCH (t) WHERE elementId(t) = row.id "
    "SET t.locked_ = true REMOVE t.locked_"
)
ORPHANS = (
    f"{KEEP_PLAN}UNWIND $rows AS row MATCH (t) WHERE elementId(t) = row.id "
    "AND (t.placeholder OR t:Genre OR t:Style) AND NOT EXISTS { (t)--() } "
    "DELETE t RETURN count(t) AS deleted"
)
RENAME = KEEP_PLAN + names.RENAME


_OUT, _IN = "-[r:{rel}]->(t)", "<-[r:{rel}]-(t)"


def _delete(label: str, pattern: str) -> str:
    return (
        f"{KEEP_PLAN}UNWIND $rows AS row {_seek('o', label, 'row.id', pattern=pattern)}"
        "DELETE r RETURN elementId(t) AS t"
    )


def _unflag(label: str, pattern: str, rel: str, kind: str, other: str) -> str:
    """Withdraw this record's side of a two-sided edge (``names.SIDE[kind]``: its flag and
    the name it gave the other end); delete the edge if no side is left. The other end is
    returned either way: it may be a placeholder this name named."""
    (flag, side_name), other = names.SIDE[kind], names.SIDE[other][0]
    return (
        f"{KEEP_PLAN}UNWIND $rows AS row "
        f"{_seek('o', label, 'row.id', pattern=pattern.format(rel=rel))}"
        f"WHERE r.{flag} REMOVE r.{flag}, r.{side_name} WITH r, t "
        f"CALL (r) {{ WITH r WHERE r.{other} IS NULL DELETE r }} RETURN elementId(t) AS t"
    )


# The kinds of reference graphinator.rows gives an edge (``e[1]``), where one statement
# writes more than one kind.
KINDS = frozenset({"by", "credit", "alias", "member", "group", "parent", "sublabel"})


def _when(kind: str, action: str) -> str:
    """``action`` for the edges of one kind only."""
    if kind not in KINDS:
        raise ValueError(f"not a fixed edge kind: {kind}")
    return f"FOREACH (_ IN CASE WHEN e[1] = '{kind}' THEN [1] ELSE [] END | {action}) "


def _links(owner: str, label: str, *actions: str) -> str:
    """One referenced node per row (``row.ref``), merged once, then every edge the
    batch's changed records have to it: ``[owner, kind, property, name]``, the owner (``o``) an
    index into ``$owners``, the element ids :data:`GATE` returned (short rows: less to
    pack and unpack than maps of element ids).
    Rows come sorted by referenced node, so concurrent batches lock in one order.
    Every argument is a constant of this module (labels checked here, at import)."""
    if owner not in NODE_LABEL.values() or label not in (ARTIST, LABEL, MASTER, GENRE, STYLE):
        raise ValueError(f"not a fixed link: {owner} -> {label}")
    key, create = ("name", "") if label in (GENRE, STYLE) else ("id", names.PLACEHOLDER)
    return (
        f"{KEEP_PLAN}UNWIND $rows AS row MERGE (t:{label} {{{key}: row.ref}}) {create}"
        f"WITH t, row UNWIND row.edges AS e MATCH (o:{owner}) WHERE elementId(o) = $owners[e[0]] "
        f"{''.join(actions)}"
    )


_IS = "CREATE (o)-[:IS]->(t)"


def _tags(owner: str) -> dict[str, str]:
    return {GENRE: _links(owner, GENRE, _IS), STYLE: _links(owner, STYLE, _IS)}


@dataclass(frozen=True, slots=True)
class Plan:
    """What a record of one type owns (removal statements, each returning the former
    targets as ``t``), and its edge statements by referenced label, in execution order.
    The ``e[1]`` kinds are the ones :mod:`graphinator.rows` gives each reference."""

    owned: tuple[str, ...]
    links: dict[str, str]


PLANS: dict[DataType, Plan] = {
    DataType.RELEASES: Plan(
        owned=(
            _delete(RELEASE, "-[r:BY|ON|DERIVED_FROM|IS]->(t)"),
            _delete(RELEASE, "<-[r:CREDITED_ON]-(t:Artist)"),
        ),
        links={
            ARTIST: _links(
                RELEASE,
                ARTIST,
                _when("by", "CREATE (o)-[:BY {name: e[3]}]->(t)"),
                _when("credit", "CREATE (t)-[:CREDITED_ON {role: e[2], name: e[3]}]->(o)"),
            ),
            LABEL: _links(RELEASE, LABEL, "CREATE (o)-[:ON {catno: e[2], name: e[3]}]->(t)"),
            MASTER: _links(RELEASE, MASTER, "CREATE (o)-[:DERIVED_FROM]->(t)"),
            **_tags(RELEASE),
        },
    ),
    DataType.MASTERS: Plan(
        owned=(_delete(MASTER, "-[r:BY|IS]->(t)"),),
        links={
            ARTIST: _links(MASTER, ARTIST, "CREATE (o)-[:BY {name: e[3]}]->(t)"),
            **_tags(MASTER),
        },
    ),
    DataType.ARTISTS: Plan(
        owned=(
            _delete(ARTIST, "-[r:ALIAS_OF]->(t:Artist)"),
            _unflag(ARTIST, _IN, "MEMBER_OF", "member", "group"),
            _unflag(ARTIST, _OUT, "MEMBER_OF", "group", "member"),
        ),
        links={
            ARTIST: _links(
                ARTIST,
                ARTIST,
                _when("alias", "CREATE (o)-[:ALIAS_OF {name: e[3]}]->(t)"),
                _when("member", names.MERGE_SIDE["member"]),
                _when("group", names.MERGE_SIDE["group"]),
            ),
        },
    ),
    DataType.LABELS: Plan(
        owned=(
            _unflag(LABEL, _OUT, "SUBLABEL_OF", "parent", "sublabel"),
            _unflag(LABEL, _IN, "SUBLABEL_OF", "sublabel", "parent"),
        ),
        links={
            LABEL: _links(
                LABEL,
                LABEL,
                _when("parent", names.MERGE_SIDE["parent"]),
                _when("sublabel", names.MERGE_SIDE["sublabel"]),
            ),
        },
    ),
}


@dataclass(frozen=True, slots=True)
class PurgeStatements:
    """The purge of one node label (see graphinator/purge.py for the procedure)."""

    facts: str  # $version -> stored (complete nodes), seen (stamped with $version)
    candidates: str  # $version -> ids of complete nodes not seen in $version or later
    lock: str  # rows {id}: the candidates locked, so that the claim reads them after
    claim: str  # rows {id, version} -> ids still candidates (read under the lock)
    demote: str  # rows {id}: still referenced -> placeholder (RENAME names it): element ids
    delete: str  # rows {id}: referenced by nothing -> deleted


def _purge(label: str) -> PurgeStatements:
    stale = "n.placeholder = false AND (n.seen IS NULL OR n.seen < {v})"
    one = f"UNWIND $rows AS row {_seek('n', label, 'row.id')}"
    return PurgeStatements(
        facts=f"MATCH (n:{label}) WHERE n.placeholder = false RETURN count(n) AS stored, "
        "sum(CASE WHEN n.seen = $version THEN 1 ELSE 0 END) AS seen",
        candidates=f"MATCH (n:{label}) WHERE {stale.format(v='$version')} "
        "RETURN n.id AS id ORDER BY id",
        lock=f"{one}SET n.locked_ = true REMOVE n.locked_",
        claim=f"{one}WHERE {stale.format(v='row.version')} SET n.placeholder = true "
        "RETURN n.id AS id",
        demote=f"{one}WHERE EXISTS {{ (n)--() }} "
        "SET n = {id: n.id, placeholder: true} RETURN elementId(n) AS node",
        delete=f"{one}WHERE NOT EXISTS {{ (n)--() }} DELETE n RETURN count(n) AS deleted",
    )


PURGE: dict[DataType, PurgeStatements] = {
    data_type: _purge(label) for data_type, label in NODE_LABEL.items()
}

# The dump version of the type's last file_complete, kept in the graph so that a
# restarted consumer still knows it when extraction_complete arrives.
FILE_COMPLETE_SET = f"MERGE (s:{STATE} {{data_type: $data_type}}) SET s.file_complete = $version"
FILE_COMPLETE_GET = f"MATCH (s:{STATE} {{data_type: $data_type}}) RETURN s.file_complete AS v"
