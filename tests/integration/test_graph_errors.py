"""graphinator's mapping of Neo4j's errors, on the real server: an error of the statement
is the batch's fault (the runtime splits it); an unreachable server is waited out."""

from __future__ import annotations

import pytest
from neo4j import AsyncGraphDatabase, AsyncManagedTransaction

from common.records import DataType
from common.sink import BatchRejected, TransientWriteError
from graphinator.errors import execute_write
from tests import servers

pytestmark = pytest.mark.integration


async def _divide_by_zero(tx: AsyncManagedTransaction) -> None:
    await (await tx.run("RETURN 1 / $zero", zero=0)).consume()


async def test_an_error_of_the_statement_rejects_the_batch() -> None:
    async with AsyncGraphDatabase.driver(servers.NEO4J_URI, auth=servers.NEO4J_AUTH) as driver:
        with pytest.raises(BatchRejected, match="neo4j rejected the batch"):
            await execute_write(driver, "neo4j", DataType.ARTISTS, _divide_by_zero)


async def test_a_server_that_does_not_answer_is_an_outage() -> None:
    # Nothing listens on port 1; the driver gives up at once instead of retrying for 30 s.
    async with AsyncGraphDatabase.driver(
        "bolt://127.0.0.1:1", auth=servers.NEO4J_AUTH, max_transaction_retry_time=0
    ) as driver:
        with pytest.raises(TransientWriteError, match="neo4j write failed"):
            await execute_write(driver, "neo4j", DataType.ARTISTS, _divide_by_zero)
