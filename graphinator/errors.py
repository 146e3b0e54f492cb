"""How graphinator runs a managed transaction and maps Neo4j's errors onto the runtime's.

Deadlocks and other transient server errors, an unreachable server, configuration-level
refusals (authentication, a missing database) and a node deleted under a concurrent
transaction (an orphan placeholder removed while another batch was linking it: a rerun
re-creates it) are :class:`TransientWriteError` (the runtime retries with backoff); any
other client error is the batch's fault and becomes :class:`BatchRejected` (the runtime
splits the batch).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog
from neo4j import AsyncDriver, AsyncManagedTransaction
from neo4j.exceptions import (
    ClientError,
    DatabaseError,
    Neo4jError,
    ServiceUnavailable,
    SessionExpired,
    TransientError,
)

from common.records import DataType
from common.sink import BatchRejected, TransientWriteError

log = structlog.get_logger(__name__)

T = TypeVar("T")
Work = Callable[[AsyncManagedTransaction], Awaitable[T]]

# Client errors that say nothing about the batch: retrying (after an operator's fix, or
# once a concurrent deletion has committed) is right, dead-lettering good records is not.
_NOT_THE_DATA = (
    "Neo.ClientError.Security.",
    "Neo.ClientError.Database.",
    "Neo.ClientError.Cluster.",
    "Neo.ClientError.Statement.EntityNotFound",
)
RETRYABLE = (TransientError, DatabaseError, ServiceUnavailable, SessionExpired, OSError)


async def execute_write(
    driver: AsyncDriver, database: str, data_type: DataType, work: Work[T]
) -> T:
    """Run ``work`` in one managed write transaction (retried by the driver on transient
    errors), mapping what still fails (see module doc)."""
    try:
        async with driver.session(database=database) as session:
            return await session.execute_write(work)
    except RETRYABLE as e:
        log.warning("graph_write_transient", data_type=str(data_type), error=describe(e))
        raise TransientWriteError(f"neo4j write failed: {describe(e)}") from e
    except ClientError as e:
        if e.code is not None and e.code.startswith(_NOT_THE_DATA):
            log.error("graph_write_refused", data_type=str(data_type), error=describe(e))
            raise TransientWriteError(f"neo4j refused the write: {describe(e)}") from e
        log.warning("graph_batch_rejected", data_type=str(data_type), error=describe(e))
        raise BatchRejected(f"neo4j rejected the batch: {describe(e)}") from e


def describe(e: Exception) -> str:
    if isinstance(e, Neo4jError) and e.code:
        return f"{e.code}: {e.message}"
    return f"{type(e).__name__}: {e}"
