"""tableinator's entry point: settings, the PostgreSQL pool, the writer, the consumer."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

import psycopg
import structlog
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from common.service import EXIT_OK, Service, run_main
from common.sink import TransientWriteError
from common.waiting import wait_for_server
from tableinator.rows import slim_record
from tableinator.settings import TableinatorSettings
from tableinator.writer import PostgresWriter

log = structlog.get_logger(__name__)

# What connecting to a PostgreSQL that is not (yet) there raises.
_CONNECT_ERRORS = (PoolTimeout, psycopg.OperationalError)
_CONNECT_TIMEOUT_S = 10


async def open_pool(settings: TableinatorSettings) -> AsyncConnectionPool:
    """An open pool, or the error of the one connection tried first.

    A pool whose first connections time out is closed for good by psycopg_pool, so each
    attempt builds a new one, and only after a plain connection has succeeded (whose error,
    unlike the pool's timeout, says why the server did not answer).
    """
    conninfo = settings.conninfo()
    probe = await psycopg.AsyncConnection.connect(conninfo, connect_timeout=_CONNECT_TIMEOUT_S)
    await probe.close()
    pool = AsyncConnectionPool(
        conninfo,
        min_size=1,
        max_size=settings.pool_size(),
        open=False,
        kwargs={"autocommit": False},
        name="tableinator",
    )
    try:
        await pool.open(wait=True, timeout=_CONNECT_TIMEOUT_S)
    except BaseException:
        await pool.close()
        raise
    return pool


async def serve(settings: TableinatorSettings, stop: asyncio.Event) -> int:
    pool = await wait_for_server(
        "postgresql", lambda: open_pool(settings), errors=_CONNECT_ERRORS, stop=stop
    )
    if pool is None:
        return EXIT_OK
    async with pool:
        writer = PostgresWriter(
            pool=pool,
            bulk_load=settings.postgres_bulk_load,
            purge_veto_fraction=settings.purge_veto_fraction,
        )

        async def setup() -> bool:
            await writer.setup()
            return True

        if not await wait_for_server(
            "postgresql schema", setup, errors=(TransientWriteError,), stop=stop
        ):
            return EXIT_OK
        service = Service(
            name="tableinator", settings=settings, writer=writer, projection=slim_record
        )
        return await service.run(stop)


DESCRIPTION = "Consumes the Discogs records from RabbitMQ into PostgreSQL, one JSONB row each."


def main(argv: Sequence[str] | None = None) -> int:
    return run_main("tableinator", TableinatorSettings, serve, description=DESCRIPTION, argv=argv)


if __name__ == "__main__":
    sys.exit(main())
