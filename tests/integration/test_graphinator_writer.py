"""Neo4jWriter against the real Neo4j: sample loads checked against an independent XML
count (tests/xmlcount.py), idempotence, order independence, hostile text, edge
replacement, two-sided edges, concurrency and error mapping."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from neo4j import AsyncDriver, AsyncGraphDatabase

from common.normalise import normalise
from common.records import DataType, Record
from common.sink import BatchRejected, TransientWriteError, WriteResult
from extractor.xmlparse import DumpFile, iter_records
from graphinator import cypher
from graphinator.writer import Neo4jWriter
from tests import xmlcount
from tests.conftest import clear_graph

pytestmark = pytest.mark.integration

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"
FORWARD = (DataType.ARTISTS, DataType.LABELS, DataType.MASTERS, DataType.RELEASES)
_LABEL = {"artists": "Artist", "labels": "Label", "masters": "Master", "releases": "Release"}


def sample_path(data_type: DataType) -> Path:
    return SAMPLES / f"discogs_20200806_{data_type}.xml.gz"


@functools.cache
def sample(data_type: DataType) -> tuple[Record, ...]:
    return tuple(iter_records(DumpFile.from_path(sample_path(data_type))))


async def load(
    writer: Neo4jWriter,
    order: Sequence[DataType] = FORWARD,
    *,
    batch: int = 500,
    reverse_records: bool = False,
) -> dict[DataType, WriteResult]:
    results = {}
    for data_type in order:
        records = list(sample(data_type))
        if reverse_records:
            records.reverse()
        written = unchanged = 0
        for i in range(0, len(records), batch):
            result = await writer.write(data_type, records[i : i + batch])
            written += result.written
            unchanged += result.unchanged
        results[data_type] = WriteResult(written=written, unchanged=unchanged)
    return results


async def query(driver: AsyncDriver, cypher: str, **params: Any) -> list[dict[str, Any]]:
    records, _, _ = await driver.execute_query(cypher, params)
    return [record.data() for record in records]


async def canonical(driver: AsyncDriver) -> list[bytes]:
    """Every node (labels, properties) and edge (type, ends, properties), sorted."""
    nodes = await query(driver, "MATCH (n) RETURN labels(n) AS labels, properties(n) AS props")
    edges = await query(
        driver,
        "MATCH (a)-[r]->(b) RETURN type(r) AS type, labels(a) AS a, coalesce(a.id, a.name) AS "
        "ak, labels(b) AS b, coalesce(b.id, b.name) AS bk, properties(r) AS props",
    )
    dump = [orjson.dumps(x, option=orjson.OPT_SORT_KEYS) for x in nodes + edges]
    return sorted(dump)


def checksum(dump: list[bytes]) -> str:
    return hashlib.sha256(b"\n".join(dump)).hexdigest()


async def rel_counts(driver: AsyncDriver) -> Counter[str]:
    rows = await query(driver, "MATCH ()-[r]->() RETURN type(r) AS t, count(*) AS c")
    return Counter({row["t"]: row["c"] for row in rows})


async def node_counts(driver: AsyncDriver, where: str = "true") -> Counter[str]:
    rows = await query(driver, f"MATCH (n) WHERE {where} RETURN labels(n)[0] AS l, count(*) AS c")
    return Counter({row["l"]: row["c"] for row in rows})


async def ready_writer(driver: AsyncDriver) -> Neo4jWriter:
    writer = Neo4jWriter(driver=driver)
    await writer.setup()
    return writer


async def until_written(write: Callable[[], Awaitable[WriteResult]]) -> WriteResult:
    """What the runtime does: retry a transient failure (with a deadline, not forever)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return await write()
        except TransientWriteError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


def release(ident: int, **fields: Any) -> Record:
    return normalise(DataType.RELEASES, {"id": str(ident), "title": f"r{ident}", **fields})


def _operators(plan: Any) -> list[str]:
    names = [plan["operatorType"].split("@")[0]]
    for child in plan.get("children", []):
        names += _operators(child)
    return names


BATCH_STATEMENTS = [
    *cypher.GATE.values(),
    *cypher.NODE_PROPS.values(),
    *(q for plan in cypher.PLANS.values() for q in plan.owned),
    *(q for plan in cypher.PLANS.values() for q in plan.links.values()),
    cypher.ORPHANS,
    cypher.RENAME,
]
PURGE_ROW_STATEMENTS = [q for p in cypher.PURGE.values() for q in (p.claim, p.demote, p.delete)]


async def _refilled_graph(driver: AsyncDriver) -> None:
    """The samples loaded, the graph emptied (schema kept) and a few hundred artists
    written again, with fresh index statistics at each step: where a planner left free
    chose to scan a whole index for each row, and a kept plan grew with the graph."""
    writer = await ready_writer(driver)
    await load(writer)
    await _resample(driver)
    async with driver.session() as session:
        for statement in ("MATCH ()-[r]->() DELETE r", "MATCH (n) DELETE n"):
            await (await session.run(statement)).consume()
    await _resample(driver)
    await writer.write(DataType.ARTISTS, list(sample(DataType.ARTISTS))[:200])


async def _resample(driver: AsyncDriver) -> None:
    await driver.execute_query("CALL db.resampleOutdatedIndexes()")
    await driver.execute_query("CALL db.awaitIndexes(120)")


async def _empty_graph(driver: AsyncDriver) -> None:
    await ready_writer(driver)


@pytest.mark.parametrize("graph", [_empty_graph, _refilled_graph], ids=["empty", "refilled"])
async def test_batch_statements_seek_by_key_whatever_the_statistics(
    neo4j_driver: AsyncDriver, graph: Callable[[AsyncDriver], Awaitable[None]]
) -> None:
    """The plans batch statements keep (replan=skip) are made on whatever graph there is
    when they first run: they must seek each keyed node, never scan a label or an index."""
    await graph(neo4j_driver)
    await neo4j_driver.execute_query("CALL db.clearQueryCaches()")
    async with neo4j_driver.session() as session:
        for statement in [*BATCH_STATEMENTS, *PURGE_ROW_STATEMENTS]:
            result = await session.run("EXPLAIN " + statement, rows=[])
            summary = await result.consume()
            assert summary.plan is not None
            operators = _operators(summary.plan)
            scans = [op for op in operators if "Scan" in op]
            assert not scans, (statement, operators)
            assert any("Seek" in op for op in operators), (statement, operators)


async def test_setup_is_idempotent(neo4j_driver: AsyncDriver) -> None:
    writer = await ready_writer(neo4j_driver)
    await writer.setup()
    rows = await query(neo4j_driver, "SHOW CONSTRAINTS YIELD labelsOrTypes, properties")
    assert sorted((r["labelsOrTypes"][0], r["properties"][0]) for r in rows) == [
        ("Artist", "id"),
        ("Genre", "name"),
        ("Label", "id"),
        ("Master", "id"),
        ("PipelineState", "data_type"),
        ("Release", "id"),
        ("Style", "name"),
    ]


@pytest.mark.slow
async def test_sample_load_matches_independent_xml_count(neo4j_driver: AsyncDriver) -> None:
    writer = await ready_writer(neo4j_driver)
    results = await load(writer)
    assert all(r == WriteResult(written=1000, unchanged=0) for r in results.values())
    expected = xmlcount.count({dt.value: sample_path(dt) for dt in FORWARD})
    assert await rel_counts(neo4j_driver) == expected.edge_counts()
    assert await node_counts(neo4j_driver) == expected.node_counts()
    complete = await node_counts(neo4j_driver, "n.placeholder = false")
    assert complete == Counter({label: 1000 for label in _LABEL.values()})
    for data_type in FORWARD:  # complete nodes are built from their own records
        rows = await query(
            neo4j_driver,
            f"MATCH (n:{_LABEL[data_type]}) WHERE NOT n.placeholder "
            "RETURN n.id AS id, n.hash AS hash, coalesce(n.name, n.title) AS name",
        )
        stored = {row["id"]: (row["hash"], row["name"]) for row in rows}
        own = {
            int(r.id): (r.stored_hash, r.data.get("name", r.data.get("title")))
            for r in sample(data_type)
        }
        assert stored == own
        assert {int(i) for i in expected.complete[_LABEL[data_type]]} == set(stored)


@pytest.mark.slow
async def test_sample_details(neo4j_driver: AsyncDriver) -> None:
    writer = await ready_writer(neo4j_driver)
    await load(writer)
    rows = await query(
        neo4j_driver,
        "MATCH (r:Release {id: 2})-[e:ON]->(l:Label) RETURN l.id AS l, e.catno AS c ORDER BY c",
    )
    assert rows == [{"l": 5, "c": "SK 026"}, {"l": 5, "c": "SK026"}]
    rows = await query(
        neo4j_driver,
        "MATCH (r:Release {id: 1}) RETURN r.year AS y, r.released AS d, r.formats AS f, "
        "r.country AS c, r.status AS s, r.data_quality AS q",
    )
    assert rows == [
        {
            "y": 1999,
            "d": "1999-03-00",
            "f": ["Vinyl"],
            "c": "Sweden",
            "s": "Accepted",
            "q": "Needs Vote",
        }
    ]
    rows = await query(
        neo4j_driver,
        "MATCH (a:Artist)-[e:CREDITED_ON]->(:Release {id: 2}) RETURN a.id AS a, e.role AS r "
        "ORDER BY a, r",
    )
    assert [(r["a"], r["r"]) for r in rows] == [
        (26, "Producer, Recorded By"),
        (26, "Written-By"),
        (27, "Producer, Recorded By"),
        (27, "Written-By"),
    ]


@pytest.mark.slow
async def test_second_load_changes_nothing(neo4j_driver: AsyncDriver) -> None:
    writer = await ready_writer(neo4j_driver)
    await load(writer)
    before = await canonical(neo4j_driver)
    results = await load(writer, batch=333)
    assert all(r == WriteResult(written=0, unchanged=1000) for r in results.values())
    after = await canonical(neo4j_driver)
    assert len(after) == len(before)
    assert checksum(after) == checksum(before)


@pytest.mark.slow
async def test_arrival_order_does_not_matter(neo4j_driver: AsyncDriver) -> None:
    writer = await ready_writer(neo4j_driver)
    await load(writer)
    forward = await canonical(neo4j_driver)
    await clear_graph(neo4j_driver)
    writer = await ready_writer(neo4j_driver)
    await load(writer, tuple(reversed(FORWARD)), batch=300, reverse_records=True)
    assert await canonical(neo4j_driver) == forward


HOSTILE = [
    "a'}) DETACH DELETE n //",
    "`x`",
    "\\",
    '"quoted" \\n $rows {id: 1}',
    "tab\tcr\r\nnul-free é",
]


async def test_hostile_text_round_trips_and_touches_nothing_else(
    neo4j_driver: AsyncDriver,
) -> None:
    writer = await ready_writer(neo4j_driver)
    await writer.write(
        DataType.RELEASES, [release(900, genres=["Keep"], artists=[{"id": "9", "name": "k"}])]
    )
    before = await canonical(neo4j_driver)
    records = [
        release(
            i + 1,
            title=text,
            country=text,
            genres=[text],
            styles=[text],
            artists=[{"id": str(100 + i), "name": text}],
            labels=[{"id": str(200 + i), "name": text, "catno": text}],
            extraartists=[{"id": str(300 + i), "name": text, "role": text}],
        )
        for i, text in enumerate(HOSTILE)
    ]
    await writer.write(DataType.RELEASES, records)
    for i, text in enumerate(HOSTILE):
        rows = await query(
            neo4j_driver,
            "MATCH (r:Release {id: $id})-[:BY]->(a:Artist), (r)-[on:ON]->(l:Label), "
            "(r)-[:IS]->(g:Genre), (r)-[:IS]->(s:Style), (c:Artist)-[cr:CREDITED_ON]->(r) "
            "RETURN [r.title, r.country, a.name, l.name, on.catno, g.name, s.name, c.name, "
            "cr.role] AS values",
            id=i + 1,
        )
        assert rows == [{"values": [text] * 9}]
    after = await canonical(neo4j_driver)
    assert set(before) <= set(after)  # the earlier graph is untouched
    assert len(after) == len(before) + 11 * len(HOSTILE)


async def test_release_with_500_credits(neo4j_driver: AsyncDriver) -> None:
    writer = await ready_writer(neo4j_driver)
    credits = [{"id": str(1000 + i), "name": f"c{i}", "role": "Producer"} for i in range(500)]
    result = await writer.write(DataType.RELEASES, [release(1, extraartists=credits)])
    assert result == WriteResult(written=1, unchanged=0, added=1)
    assert await rel_counts(neo4j_driver) == Counter({"CREDITED_ON": 500})
    assert await node_counts(neo4j_driver, "n.placeholder") == Counter({"Artist": 500})


async def test_changed_record_replaces_its_edges(neo4j_driver: AsyncDriver) -> None:
    writer = await ready_writer(neo4j_driver)
    v1 = release(
        7,
        country="UK",
        genres=["Rock", "Pop"],
        styles=["Mod"],
        artists=[{"id": "1", "name": "A"}, {"id": "2", "name": "B"}],
        labels=[{"id": "5", "name": "L", "catno": "X1"}],
        master_id="70",
    )
    await writer.write(DataType.RELEASES, [v1])
    v2 = release(7, genres=["Rock"], artists=[{"id": "1", "name": "A"}])
    assert await writer.write(DataType.RELEASES, [v2]) == WriteResult(written=1, unchanged=0)
    rows = await query(
        neo4j_driver,
        "MATCH (:Release {id: 7})-[e]-(n) RETURN type(e) AS t, coalesce(n.id, n.name) AS n",
    )
    assert sorted((r["t"], r["n"]) for r in rows) == [("BY", 1), ("IS", "Rock")]
    rows = await query(neo4j_driver, "MATCH (r:Release {id: 7}) RETURN r.country AS c")
    assert rows == [{"c": None}]  # a dropped field is gone too
    same_hash = Record(id=v2.id, sha256=v2.sha256, data={**v2.data, "genres": ["Jazz"]})
    assert await writer.write(DataType.RELEASES, [same_hash]) == WriteResult(0, 1)


def artist(ident: int, **fields: Any) -> Record:
    return normalise(DataType.ARTISTS, {"id": str(ident), "name": f"a{ident}", **fields})


def label(ident: int, **fields: Any) -> Record:
    return normalise(DataType.LABELS, {"id": str(ident), "name": f"l{ident}", **fields})


async def test_two_sided_edges_belong_to_each_side(neo4j_driver: AsyncDriver) -> None:
    writer = await ready_writer(neo4j_driver)
    member_of = "MATCH (:Artist {id: 2})-[r:MEMBER_OF]->(:Artist {id: 1}) RETURN properties(r) AS p"
    await writer.write(DataType.ARTISTS, [artist(1, members=[{"id": "2", "name": "a2"}])])
    await writer.write(DataType.ARTISTS, [artist(2, groups=[{"id": "1", "name": "a1"}])])
    assert await query(neo4j_driver, member_of) == [
        {"p": {"from_members": True, "from_groups": True, "member_name": "a2", "group_name": "a1"}}
    ]
    await writer.write(DataType.ARTISTS, [artist(2)])  # the member no longer lists the group
    assert await query(neo4j_driver, member_of) == [
        {"p": {"from_members": True, "member_name": "a2"}}
    ]
    await writer.write(DataType.ARTISTS, [artist(1, realname="x")])  # nor the group the member
    assert await query(neo4j_driver, member_of) == []

    sub_of = "MATCH (:Label {id: 11})-[r:SUBLABEL_OF]->(:Label {id: 10}) RETURN properties(r) AS p"
    await writer.write(DataType.LABELS, [label(11, parentLabel={"id": "10", "name": "l10"})])
    await writer.write(DataType.LABELS, [label(10, sublabels=[{"id": "11", "name": "l11"}])])
    assert await query(neo4j_driver, sub_of) == [
        {
            "p": {
                "from_parent_label": True,
                "from_sublabels": True,
                "parent_name": "l10",
                "sublabel_name": "l11",
            }
        }
    ]
    await writer.write(DataType.LABELS, [label(10)])
    assert await query(neo4j_driver, sub_of) == [
        {"p": {"from_parent_label": True, "parent_name": "l10"}}
    ]
    rows = await query(
        neo4j_driver, "MATCH (n) RETURN count(n) AS c, sum(toInteger(n.placeholder)) AS p"
    )
    assert rows == [{"c": 4, "p": 0}]


async def test_concurrent_writes_lose_nothing(neo4j_driver: AsyncDriver) -> None:
    writer = await ready_writer(neo4j_driver)
    batches = [
        [
            release(
                b * 100 + i,
                genres=["Electronic", "Rock", "Pop"],
                styles=["House", "Techno", "Ambient"],
                artists=[{"id": str(1 + (i % 5)), "name": "x"}, {"id": "99", "name": "y"}],
                extraartists=[{"id": str(10 + i % 7), "name": "z", "role": "Mixed By"}],
                labels=[{"id": str(1 + i % 3), "name": "l", "catno": str(i)}],
            )
            for i in range(40)
        ]
        for b in range(1, 9)
    ]
    results = await asyncio.gather(
        *(until_written(functools.partial(writer.write, DataType.RELEASES, b)) for b in batches)
    )
    assert sum(r.written for r in results) == 320
    assert await rel_counts(neo4j_driver) == Counter(
        {"IS": 320 * 6, "BY": 320 * 2, "CREDITED_ON": 320, "ON": 320}
    )
    assert await node_counts(neo4j_driver) == Counter(
        {"Release": 320, "Genre": 3, "Style": 3, "Artist": 13, "Label": 3}
    )


async def test_record_without_usable_id_is_rejected(neo4j_driver: AsyncDriver) -> None:
    writer = await ready_writer(neo4j_driver)
    bad = Record(id="not-a-number", sha256="x", data={"id": "not-a-number"})
    with pytest.raises(BatchRejected, match="not a Discogs id"):
        await writer.write(DataType.ARTISTS, [bad])


async def test_unreachable_server_is_transient() -> None:
    driver = AsyncGraphDatabase.driver(
        "bolt://127.0.0.1:1",
        auth=("neo4j", "x"),
        max_transaction_retry_time=0.5,
        connection_timeout=1,
    )
    async with driver:
        writer = Neo4jWriter(driver=driver)
        with pytest.raises(TransientWriteError):
            await writer.write(DataType.ARTISTS, [artist(1)])


async def test_missing_database_is_not_the_batchs_fault(neo4j_driver: AsyncDriver) -> None:
    writer = Neo4jWriter(driver=neo4j_driver, database="nosuchdb")
    with pytest.raises(TransientWriteError, match="DatabaseNotFound"):
        await writer.write(DataType.ARTISTS, [artist(1)])
