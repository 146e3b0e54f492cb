"""A monthly purge beside another replica's write of the same record, on the real Neo4j:
whichever of the two takes the node first, the other sees what it did, so a record written
in this month's dump is never left demoted to a placeholder.

The transactions are driven step by step on a node of its own (an id no sample uses), so
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

RELEASE_ID = 990_000_101
A, B = "20260101", "20260201"
RELEASES = DataType.RELEASES


@pytest.fixture
async def driver() -> AsyncIterator[AsyncDriver]:
    async with AsyncGraphDatabase.driver(servers.NEO4J_URI, auth=servers.NEO4J_AUTH) as drv:
        await _remove(drv)
        yield drv
        await _remove(drv)


async def _remove(driver: AsyncDriver) -> None:
    await driver.execute_query("MATCH (n:Release {id: $r}) DETACH DELETE n", r=RELEASE_ID)


async def _blocked_or_done(driver: AsyncDriver, task: asyncio.Task[object]) -> bool:
    if task.done():
        return True
    records, _, _ = await driver.execute_query(
        "SHOW TRANSACTIONS YIELD status WHERE status STARTS WITH 'Blocked' RETURN count(*) AS n"
    )
    return bool(records[0]["n"])


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
