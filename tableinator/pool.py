"""Units of work on tableinator's connection pool: a cursor inside one transaction.

The pool must hand out connections in the default (non-autocommit) mode. Driver errors
leave as the runtime's :class:`~common.sink.TransientWriteError` or
:class:`~common.sink.BatchRejected` (:func:`tableinator.sql.classify`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import psycopg
from psycopg import AsyncCursor
from psycopg_pool import AsyncConnectionPool

from tableinator import sql

Transaction = Callable[[], AbstractAsyncContextManager[AsyncCursor[Any]]]


def transactions(pool: AsyncConnectionPool[Any]) -> Transaction:
    """Opens one transaction on a pooled connection per ``async with``."""

    @asynccontextmanager
    async def transaction() -> AsyncIterator[AsyncCursor[Any]]:
        try:
            async with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                yield cur
        except psycopg.Error as e:
            mapped = sql.classify(e)
            if mapped is None:
                raise
            raise mapped from e

    return transaction
