"""Two deletions racing on the real Neo4j: a label deleted while the release pointing at
it is deleted in another transaction (as the labels and releases queues of a delta, or
two types' purges, run side by side) leaves neither a node nor a placeholder behind.

The transactions are driven step by step on nodes of their own (ids no sample uses), so
the graph is not emptied for it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from neo4j import AsyncDriver, AsyncGraphDatabase

from common.records import DataType
from graphinator import cypher, purge
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
