"""Monthly updates on the real Neo4j: a dump version loaded over the previous one ends
equal to a fresh load of it (records added, changed, removed; removed records still
referenced kept as placeholders), the purge guards, a crash mid-purge, version order and
WriteResult.added."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import pytest
import structlog
from neo4j import AsyncDriver

from common.messages import ExtractionComplete, FileComplete
from common.normalise import normalise
from common.records import DataType, Record
from common.sink import WriteResult
from graphinator import purge
from graphinator.writer import Neo4jWriter
from tests.conftest import clear_graph
from tests.integration.test_graphinator_writer import FORWARD, canonical, query, sample

pytestmark = pytest.mark.integration

A, B = "20260101", "20260201"
Dump = dict[DataType, list[Record]]


def stamp(records: Iterable[Record], version: str) -> list[Record]:
    return [replace(r, version=version) for r in records]


def rec(data_type: DataType, ident: int | str, version: str = A, **fields: Any) -> Record:
    return replace(normalise(data_type, {"id": str(ident), **fields}), version=version)


async def write_all(writer: Neo4jWriter, dump: Dump, *, batch: int = 250) -> dict[str, WriteResult]:
    out = {}
    for data_type in FORWARD:
        records = dump.get(data_type, [])
        totals = [0, 0, 0]
        for i in range(0, len(records), batch):
            r = await writer.write(data_type, records[i : i + batch])
            totals = [totals[0] + r.written, totals[1] + r.unchanged, totals[2] + r.added]
        out[data_type.value] = WriteResult(*totals)
    return out


async def finish(
    writer: Neo4jWriter, version: str | None, types: Sequence[DataType] = FORWARD, **kw: Any
) -> dict[str, int]:
    """file_complete then extraction_complete for each type, as the runtime sends them."""
    for data_type in types:
        file = f"discogs_{version}_{data_type.value}.xml.gz"
        await writer.file_complete(FileComplete(data_type, file, None, version))
    out = {}
    for data_type in types:
        message = ExtractionComplete(version, {})
        out[data_type.value] = await writer.extraction_complete(
            data_type, message, dead_letters=kw.get("dead_letters", 0)
        )
    return out


def refs_of(dump: Dump) -> dict[str, set[int]]:
    """Ids every record of ``dump`` references, by target label."""
    out: dict[str, set[int]] = {"Artist": set(), "Label": set()}
    for data_type, records in dump.items():
        for r in records:
            d = r.data
            items = [*d.get("artists", []), *d.get("extraartists", [])]
            if data_type is DataType.ARTISTS:
                items = [*d.get("aliases", []), *d.get("members", []), *d.get("groups", [])]
            out["Artist"].update(int(i["id"]) for i in items if i.get("id", "0") != "0")
            labels = [*d.get("labels", []), *d.get("sublabels", [])]
            if isinstance(d.get("parentLabel"), dict):
                labels.append(d["parentLabel"])
            out["Label"].update(int(i["id"]) for i in labels if i.get("id", "0") != "0")
    return out


def _change(data_type: DataType, r: Record) -> Record:
    d = dict(r.data)
    if data_type is DataType.RELEASES:  # loses a genre and an artist (when it has two)
        d["genres"] = d.get("genres", [])[1:] or ["Changed"]
        d["artists"] = d.get("artists", [])[1:]
    key = "title" if data_type in (DataType.RELEASES, DataType.MASTERS) else "name"
    d[key] = f"{d.get(key, '')} (changed)"
    return normalise(data_type, d)


def _add(data_type: DataType, r: Record, new_id: int) -> Record:
    return normalise(data_type, {**r.data, "id": str(new_id)})


def version_b() -> tuple[Dump, dict[str, int]]:
    """Version B: about 1% of each type removed, 1% changed and 1% added; among the removed,
    a label releases still reference and an artist nobody references."""
    base = {dt: list(sample(dt)) for dt in FORWARD}
    keep = {dt: records[10:] for dt, records in base.items()}
    refs = refs_of(keep)
    label_ids = {int(r.id) for r in base[DataType.LABELS]}
    referenced_label = min(refs["Label"] & label_ids)
    lone_artist = min(int(r.id) for r in base[DataType.ARTISTS] if int(r.id) not in refs["Artist"])
    special = {DataType.LABELS: referenced_label, DataType.ARTISTS: lone_artist}
    dump: Dump = {}
    for dt, records in base.items():
        first = special.get(dt, int(records[0].id))
        gone = {first, *[int(r.id) for r in records if int(r.id) != first][:9]}
        kept = [r for r in records if int(r.id) not in gone]
        changed = [_change(dt, r) for r in kept[100:110]]
        added = [_add(dt, r, 900_000_000 + i) for i, r in enumerate(kept[200:210])]
        dump[dt] = stamp([*kept[:100], *changed, *kept[110:], *added], B)
    return dump, {"label": referenced_label, "artist": lone_artist}


@pytest.mark.slow
async def test_update_equals_a_fresh_load_of_the_new_version(neo4j_driver: AsyncDriver) -> None:
    writer = Neo4jWriter(driver=neo4j_driver)
    await writer.setup()
    await write_all(writer, {dt: stamp(sample(dt), A) for dt in FORWARD})
    assert await finish(writer, A) == {dt.value: 0 for dt in FORWARD}
    dump_b, special = version_b()
    results = await write_all(writer, dump_b)
    assert results == {dt.value: WriteResult(written=20, unchanged=980, added=10) for dt in FORWARD}
    assert await finish(writer, B) == {dt.value: 10 for dt in FORWARD}
    updated = await canonical(neo4j_driver)
    rows = await query(
        neo4j_driver,
        "MATCH (l:Label {id: $l}) OPTIONAL MATCH (a:Artist {id: $a}) "
        "RETURN properties(l) AS l, a IS NULL AS artist_gone, EXISTS { (l)<-[:ON]-() } AS used",
        l=special["label"],
        a=special["artist"],
    )
    assert rows[0]["artist_gone"]
    assert rows[0]["used"]
    assert rows[0]["l"]["placeholder"] is True
    assert set(rows[0]["l"]) <= {
        "id",
        "name",
        "placeholder",
    }

    await clear_graph(neo4j_driver)
    fresh = Neo4jWriter(driver=neo4j_driver)
    await fresh.setup()
    await write_all(fresh, dump_b, batch=333)
    assert await finish(fresh, B) == {dt.value: 0 for dt in FORWARD}
    expected = await canonical(neo4j_driver)
    assert set(updated) ^ set(expected) == set()
    assert updated == expected


async def labels_a_then_b(writer: Neo4jWriter, keep: int, *, total: int = 20) -> None:
    await write_all(
        writer, {DataType.LABELS: [rec(DataType.LABELS, i) for i in range(1, total + 1)]}
    )
    await finish(writer, A, [DataType.LABELS])
    await write_all(
        writer, {DataType.LABELS: [rec(DataType.LABELS, i, B) for i in range(1, keep + 1)]}
    )


async def label_count(driver: AsyncDriver) -> int:
    rows = await query(driver, "MATCH (n:Label) RETURN count(n) AS c")
    return int(rows[0]["c"])


async def test_guards_block_the_purge_and_say_why(neo4j_driver: AsyncDriver) -> None:
    writer = Neo4jWriter(driver=neo4j_driver, purge_veto_fraction=0.10)
    await writer.setup()
    await labels_a_then_b(writer, keep=19)
    labels = DataType.LABELS
    done = ExtractionComplete(B, {})
    with structlog.testing.capture_logs() as logs:
        assert (
            await writer.extraction_complete(labels, done, dead_letters=0) == 0
        )  # no file_complete
        await writer.file_complete(FileComplete(labels, "discogs_x_labels.xml.gz", None, B))
        assert await writer.extraction_complete(labels, done, dead_letters=2) == 0
        assert (
            await writer.extraction_complete(labels, ExtractionComplete(None, {}), dead_letters=0)
            == 0
        )
    skipped = [e for e in logs if e["event"] == "graph_purge_skipped"]
    assert [e["reason"].split(" ")[0:2] for e in skipped] == [
        ["no", "file_complete"],
        ["2", "dead-lettered"],
        ["extraction_complete", "names"],
    ]
    assert all(e["data_type"] == "labels" and e["would_delete"] == 1 for e in skipped[:2])
    assert await label_count(neo4j_driver) == 20
    assert await writer.extraction_complete(labels, done, dead_letters=0) == 1
    assert await label_count(neo4j_driver) == 19


async def test_veto_blocks_a_truncated_version(neo4j_driver: AsyncDriver) -> None:
    writer = Neo4jWriter(driver=neo4j_driver, purge_veto_fraction=0.10)
    await writer.setup()
    await labels_a_then_b(writer, keep=17)  # 15% would go
    with structlog.testing.capture_logs() as logs:
        assert await finish(writer, B, [DataType.LABELS]) == {"labels": 0}
    [event] = [e for e in logs if e["event"] == "graph_purge_skipped"]
    assert "veto" in event["reason"]
    assert event["seen"] == 17
    assert event["stored"] == 20
    assert await label_count(neo4j_driver) == 20
    lenient = Neo4jWriter(driver=neo4j_driver, purge_veto_fraction=0.2)
    assert (
        await lenient.extraction_complete(
            DataType.LABELS, ExtractionComplete(B, {}), dead_letters=0
        )
        == 3
    )


def artists(version: str, ids: Iterable[int]) -> list[Record]:
    """Artists each aliasing the next and grouping the one after: shared targets."""
    return [
        rec(
            DataType.ARTISTS,
            i,
            version,
            name=f"a{i}",
            aliases=[{"id": str(i + 1), "name": f"a{i + 1}"}],
            groups=[{"id": str(i + 2), "name": f"a{i + 2}"}],
        )
        for i in ids
    ]


async def test_crash_mid_purge_then_restart_finishes(
    neo4j_driver: AsyncDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids_b = [i for i in range(1, 101) if i % 10 != 3]  # 10 removed, referenced or not
    writer = Neo4jWriter(driver=neo4j_driver, purge_veto_fraction=0.2, purge_chunk=2)
    await writer.setup()
    await write_all(writer, {DataType.ARTISTS: artists(A, range(1, 101))})
    await finish(writer, A, [DataType.ARTISTS])
    await write_all(writer, {DataType.ARTISTS: artists(B, ids_b)})
    real, calls = purge.purge_chunk, 0

    async def crashing(*args: Any) -> purge.PurgeCount:
        nonlocal calls
        calls += 1
        count = await real(*args)
        if calls == 3:  # dies inside the third chunk's transaction: rolled back
            raise KeyboardInterrupt
        return count

    monkeypatch.setattr(purge, "purge_chunk", crashing)
    with pytest.raises(KeyboardInterrupt):
        await finish(writer, B, [DataType.ARTISTS])
    monkeypatch.setattr(purge, "purge_chunk", real)
    restarted = Neo4jWriter(driver=neo4j_driver, purge_veto_fraction=0.2, purge_chunk=2)
    done = ExtractionComplete(B, {})
    assert await restarted.extraction_complete(DataType.ARTISTS, done, dead_letters=0) == 6
    assert await restarted.extraction_complete(DataType.ARTISTS, done, dead_letters=0) == 0
    updated = await canonical(neo4j_driver)
    await clear_graph(neo4j_driver)
    await restarted.setup()
    await write_all(restarted, {DataType.ARTISTS: artists(B, ids_b)})
    await finish(restarted, B, [DataType.ARTISTS])
    assert updated == await canonical(neo4j_driver)


async def test_older_version_never_overwrites_a_newer_one(neo4j_driver: AsyncDriver) -> None:
    writer = Neo4jWriter(driver=neo4j_driver)
    await writer.setup()
    new = rec(DataType.RELEASES, 1, B, title="new", genres=["New"])
    old = rec(DataType.RELEASES, 1, A, title="old", genres=["Old"])
    assert await writer.write(DataType.RELEASES, [new]) == WriteResult(1, 0, added=1)
    assert await writer.write(DataType.RELEASES, [old]) == WriteResult(0, 1)
    stored = "MATCH (r:Release {id: 1})-[:IS]->(g) RETURN r.title AS t, r.seen AS s, g.name AS g"
    assert await query(neo4j_driver, stored) == [{"t": "new", "s": B, "g": "New"}]
    assert await writer.write(DataType.RELEASES, [replace(new, version=A)]) == WriteResult(0, 1)
    assert await query(neo4j_driver, stored) == [{"t": "new", "s": B, "g": "New"}]
    unversioned = rec(DataType.RELEASES, 1, title="any", genres=["New"])
    unversioned = replace(unversioned, version=None)
    assert await writer.write(DataType.RELEASES, [unversioned]) == WriteResult(1, 0)
    assert await query(neo4j_driver, stored) == [{"t": "any", "s": B, "g": "New"}]


async def test_added_counts_new_and_completed_placeholders(neo4j_driver: AsyncDriver) -> None:
    writer = Neo4jWriter(driver=neo4j_driver)
    await writer.setup()
    first = rec(DataType.RELEASES, 1, artists=[{"id": "5", "name": "p"}])
    assert await writer.write(DataType.RELEASES, [first]) == WriteResult(1, 0, added=1)
    batch = [rec(DataType.ARTISTS, 5, name="five"), rec(DataType.ARTISTS, 6, name="six")]
    assert await writer.write(DataType.ARTISTS, batch) == WriteResult(2, 0, added=2)
    batch = [rec(DataType.ARTISTS, 5, B, name="5"), rec(DataType.ARTISTS, 6, B, name="six")]
    assert await writer.write(DataType.ARTISTS, batch) == WriteResult(1, 1, added=0)
    rows = await query(neo4j_driver, "MATCH (a:Artist) RETURN a.id AS id, a.seen AS s ORDER BY id")
    assert rows == [{"id": 5, "s": B}, {"id": 6, "s": B}]


async def test_unchanged_update_touches_no_relationship(neo4j_driver: AsyncDriver) -> None:
    writer = Neo4jWriter(driver=neo4j_driver)
    await writer.setup()
    record = rec(DataType.RELEASES, 1, artists=[{"id": "5", "name": "p"}], genres=["G"])
    await writer.write(DataType.RELEASES, [record])
    ids = "MATCH (:Release {id: 1})-[r]-() RETURN elementId(r) AS e ORDER BY e"
    before = await query(neo4j_driver, ids)
    assert await writer.write(DataType.RELEASES, [replace(record, version=B)]) == WriteResult(0, 1)
    assert await query(neo4j_driver, ids) == before  # same relationships, not recreated
