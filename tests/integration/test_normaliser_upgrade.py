"""A normaliser upgrade reaches stored records: the samples stored by the older normaliser
(version 1: empty list items dropped, bare sha256 in the hash gate) are loaded again by
the current one with the same sha256; the affected documents change, the others keep
their content, and a further load writes nothing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from neo4j import AsyncDriver
from psycopg_pool import AsyncConnectionPool

import common.records
from common.records import DataType, Record, stored_hash
from tableinator.writer import PostgresWriter
from tests.integration.test_graphinator_writer import query, ready_writer
from tests.integration.test_tableinator_updates import SAMPLES, new_pool, rows_of, sample
from tests.xmlcount import children_per_record

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TYPES = (DataType.LABELS, DataType.RELEASES)  # the types whose samples hold empty items


def old_form(value: Any) -> Any:
    """``value`` as normaliser version 1 built it: empty list items dropped, and lists
    (then fields) left empty by that dropped too."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            kept = old_form(item)
            if kept not in ([], {}):
                out[key] = kept
        return out
    if isinstance(value, list):
        return [old_form(v) for v in value if v not in ({}, "") and old_form(v) != {}]
    return value


def as_old(records: Sequence[Record]) -> list[Record]:
    """The same records (same sha256, as a producer that hashes its own form would send
    them) with version 1's data."""
    return [Record(r.id, r.sha256, old_form(r.data)) for r in records]


def affected(data_type: DataType) -> set[str]:
    return {r.id for r in sample(data_type) if old_form(r.data) != r.data}


async def write_all(write: Any, version: int, monkeypatch: pytest.MonkeyPatch) -> int:
    """Write the old (version 1) or current samples of TYPES; records written."""
    monkeypatch.setattr(common.records, "NORMALISER_VERSION", version)
    written = 0
    for data_type in TYPES:
        records = list(sample(data_type))
        batch = as_old(records) if version == 1 else records
        for start in range(0, len(batch), 250):
            written += (await write(data_type, batch[start : start + 250])).written
    monkeypatch.undo()
    return written


def test_the_samples_have_records_the_upgrade_affects() -> None:
    assert affected(DataType.RELEASES)
    assert affected(DataType.LABELS)
    assert not affected(DataType.ARTISTS)
    assert stored_hash("ab", 1) == "ab"
    assert stored_hash("ab", 2) != "ab"


async def test_postgres_rewrites_what_an_older_normaliser_stored(
    pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool: AsyncConnectionPool[Any]
    async with new_pool(pg_dsn) as pool:
        writer = PostgresWriter(pool=pool)
        await writer.setup()
        assert await write_all(writer.write, 1, monkeypatch) == 2000
        before = {t: await rows_of(pool, t) for t in TYPES}

        assert await write_all(writer.write, 2, monkeypatch) == 2000
        after = {t: await rows_of(pool, t) for t in TYPES}
        for data_type in TYPES:
            changed = affected(data_type)
            current = {r.id: r for r in sample(data_type)}
            assert set(after[data_type]) == set(before[data_type])
            for ident, (hash_, data, *_rest) in after[data_type].items():
                assert hash_ == current[ident].stored_hash
                assert data == current[ident].data
                old_data = before[data_type][ident][1]
                assert (data != old_data) == (ident in changed), ident

        # What is stored has every item of the dump's lists, counted from the XML itself.
        for data_type, key in ((DataType.RELEASES, "tracklist"), (DataType.LABELS, "sublabels")):
            path = SAMPLES / f"discogs_20200806_{data_type.value}.xml.gz"
            stored = {i: len(row[1][key]) for i, row in after[data_type].items() if key in row[1]}
            assert stored == children_per_record(path, key)

        assert await write_all(writer.write, 2, monkeypatch) == 0


async def test_the_graph_rewrites_what_an_older_normaliser_stored(
    neo4j_driver: AsyncDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = await ready_writer(neo4j_driver)
    assert await write_all(writer.write, 1, monkeypatch) == 2000
    before = await nodes(neo4j_driver)

    assert await write_all(writer.write, 2, monkeypatch) == 2000
    after = await nodes(neo4j_driver)
    current = {(t.value, r.id): r for t in TYPES for r in sample(t)}
    # Only the samples' nodes: other sessions may write other ids into the shared graph.
    assert set(current) <= set(after)
    assert set(current) <= set(before)
    for ident, record in current.items():
        hash_, props = after[ident]
        assert hash_ == record.stored_hash
        assert before[ident][0] == record.sha256  # version 1: the bare sha256
        # Empty items carry no id: the nodes' other properties do not change.
        assert props == before[ident][1]

    assert await write_all(writer.write, 2, monkeypatch) == 0


async def nodes(driver: AsyncDriver) -> dict[tuple[str, str], tuple[str, dict[str, Any]]]:
    """Release and label nodes (not placeholders): id -> (hash, other properties)."""
    rows = await query(
        driver,
        "MATCH (n) WHERE (n:Release OR n:Label) AND n.placeholder = false "
        "RETURN n:Release AS release, n.id AS id, properties(n) AS p",
    )
    out = {}
    for row in rows:
        props = dict(row["p"])
        out[("releases" if row["release"] else "labels", str(row["id"]))] = (
            props.pop("hash"),
            props,
        )
    return out
