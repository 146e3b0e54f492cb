"""Races of a deletion on the real Neo4j. Two deletions: a label deleted while the release
pointing at it is deleted in another transaction (as the labels and releases queues of a
delta, or two types' purges, run side by side) leaves neither a node nor a placeholder
behind. A purge beside another replica's write of the same release: whichever takes the
node first, the other sees what it did, so a record of this month's dump is never lost.

The transactions are driven step by step on nodes of their own (ids no sample uses), so
the graph is not emptied for it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from neo4j import AsyncDriver, AsyncGraphDatabase

from common.normalise import normalise
from common.records import DataType, Record
from graphinator import cypher, purge
from graphinator.rows import gate_rows
from graphinator.writer import Neo4jWriter
from tests import servers
from tests.support import eventually

pytestmark = pytest.mark.integration

LABEL_ID, RELEASE_ID = 990_000_001, 990_000_002
A, B = "20260101", "20260201"


@pytest.fixture
async def driver() -> AsyncIterator[AsyncDriver]:
    async with AsyncGraphDatabase.driver(servers.NEO4J_URI, auth=servers.NEO4J_AUTH) as drv:
        await _remove(drv)
        yield drv
        await _remove(drv)


async def _remove(driver: AsyncDriver) -> None:
    await driver.execute_query(
        "MATCH (n) WHERE (n:Label AND n.id = $l) OR (n:Release AND n.id = $r) DETACH DELETE n",
        l=LABEL_ID,
        r=RELEASE_ID,
    )


async def _blocked_or_done(driver: AsyncDriver, task: asyncio.Task[object]) -> bool:
    if task.done():
        return True
    records, _, _ = await driver.execute_query(
        "SHOW TRANSACTIONS YIELD status WHERE status STARTS WITH 'Blocked' RETURN count(*) AS n"
    )
    return bool(records[0]["n"])


async def test_a_label_deleted_beside_its_last_release_leaves_no_placeholder(
    driver: AsyncDriver,
) -> None:
    await driver.execute_query(
        "CREATE (:Label {id: $l, name: 'L', placeholder: false, seen: $a})"
        "<-[:ON]-(:Release {id: $r, title: 'R', placeholder: false, seen: $a})",
        l=LABEL_ID,
        r=RELEASE_ID,
        a=A,
    )
    label_rows = [{"id": LABEL_ID, "version": B}]
    statements = cypher.PURGE[DataType.LABELS]
    async with driver.session() as first, driver.session() as second:
        labels = await first.begin_transaction()
        claimed = await (await labels.run(statements.claim, rows=label_rows)).value("id")
        assert claimed == [LABEL_ID]
        releases = await second.begin_transaction()
        release_rows = [{"id": RELEASE_ID, "version": B}]
        deleting = asyncio.create_task(purge.purge_chunk(releases, DataType.RELEASES, release_rows))
        try:
            # The release's transaction removes its edge, then waits for the label's lock
            # before it looks at the label (or, unlocked, finishes first: the race).
            await eventually(lambda: _blocked_or_done(driver, deleting), what="release blocked")
            rows = [{"id": LABEL_ID}]
            await (await labels.run(statements.demote, rows=rows)).consume()
            await (await labels.run(statements.delete, rows=rows)).consume()
            await labels.commit()
            count = await asyncio.wait_for(deleting, timeout=30)
            await releases.commit()
        finally:
            with contextlib.suppress(Exception):
                await labels.close()
            with contextlib.suppress(Exception):
                await releases.close()
    assert count.records == 1
    records, _, _ = await driver.execute_query(
        "MATCH (n) WHERE (n:Label AND n.id = $l) OR (n:Release AND n.id = $r) "
        "RETURN labels(n) AS labels, properties(n) AS props",
        l=LABEL_ID,
        r=RELEASE_ID,
    )
    assert [r.data() for r in records] == []


RELEASES = DataType.RELEASES


async def _release(driver: AsyncDriver) -> dict[str, object]:
    records, _, _ = await driver.execute_query(
        "MATCH (n:Release {id: $r}) RETURN properties(n) AS p", r=RELEASE_ID
    )
    return dict(records[0]["p"])


async def _loaded_in_a(driver: AsyncDriver) -> tuple[Neo4jWriter, Record]:
    """The writer, and the release as this month (B) sends it again, unchanged."""
    writer = Neo4jWriter(driver=driver)
    record = normalise(RELEASES, {"id": str(RELEASE_ID), "title": "Kept"})
    await writer.write(RELEASES, [replace(record, version=A)])
    return writer, replace(record, version=B)


async def test_a_purge_waits_for_a_write_in_flight_and_keeps_what_it_confirmed(
    driver: AsyncDriver,
) -> None:
    _, record = await _loaded_in_a(driver)
    async with driver.session() as first, driver.session() as second:
        write = await first.begin_transaction()  # another replica's gate confirming B
        await (await write.run(cypher.GATE[RELEASES], rows=gate_rows([record]))).consume()
        chunk = await second.begin_transaction()
        rows = [{"id": RELEASE_ID, "version": B}]
        purging = asyncio.create_task(purge.purge_chunk(chunk, RELEASES, rows))
        try:
            await eventually(lambda: _blocked_or_done(driver, purging), what="purge blocked")
            await write.commit()
            count = await asyncio.wait_for(purging, timeout=30)
            await chunk.commit()
        finally:
            for tx in (write, chunk):
                with contextlib.suppress(Exception):
                    await tx.close()
    assert count.records == 0
    props = await _release(driver)
    assert (props["placeholder"], props["title"], props["seen"]) == (False, "Kept", B)


async def test_a_write_waits_for_a_purge_in_flight_and_writes_the_record_again(
    driver: AsyncDriver,
) -> None:
    writer, record = await _loaded_in_a(driver)
    async with driver.session() as session:
        chunk = await session.begin_transaction()  # the purge removing the release (seen A)
        rows = [{"id": RELEASE_ID, "version": B}]
        removed = await purge.purge_chunk(chunk, RELEASES, rows)
        assert removed.records == 1
        writing = asyncio.create_task(writer.write(RELEASES, [record]))
        try:
            await eventually(lambda: _blocked_or_done(driver, writing), what="write blocked")
            await chunk.commit()
            result = await asyncio.wait_for(writing, timeout=30)
        finally:
            with contextlib.suppress(Exception):
                await chunk.close()
    assert result.written == 1  # not "unchanged": the purge had removed it
    props = await _release(driver)
    assert (props["placeholder"], props["title"], props["seen"]) == (False, "Kept", B)
