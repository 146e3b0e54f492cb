"""tableinator's entry point: settings, the PostgreSQL pool, the writer, the consumer."""

from __future__ import annotations

import asyncio
import sys

import psycopg
import structlog
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from common.service import EXIT_OK, Service, retry_until, run_main
from common.sink import TransientWriteError
from tableinator.settings import TableinatorSettings
from tableinator.sql import slim_record
from tableinator.writer import PostgresWriter

log = structlog.get_logger(__name__)


async def serve(settings: TableinatorSettings, stop: asyncio.Event) -> int:
    async with AsyncConnectionPool(
        settings.conninfo(),
        min_size=1,
        max_size=settings.pool_size(),
        open=False,
        kwargs={"autocommit": False},
        name="tableinator",
    ) as pool:
        await pool.open(wait=False)

        async def ready() -> bool:
            try:
                await pool.wait(timeout=5)
            except (PoolTimeout, psycopg.OperationalError) as e:
                log.warning("postgres not ready", error=str(e))
                return False
            return True

        if not await retry_until("postgresql", ready, stop=stop):
            return EXIT_OK
        writer = PostgresWriter(
            pool=pool,
            bulk_load=settings.postgres_bulk_load,
            purge_veto_fraction=settings.purge_veto_fraction,
        )

        async def schema_ready() -> bool:
            try:
                await writer.setup()
            except TransientWriteError as e:
                log.warning("schema setup failed; retrying", error=str(e))
                return False
            return True

        if not await retry_until("postgresql schema", schema_ready, stop=stop):
            return EXIT_OK
        service = Service(
            name="tableinator", settings=settings, writer=writer, projection=slim_record
        )
        return await service.run(stop)


def main() -> int:
    return run_main("tableinator", TableinatorSettings, serve)


if __name__ == "__main__":
    sys.exit(main())
