"""graphinator's entry point: settings, the Neo4j driver, the writer, the consumer."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import structlog
from neo4j import Address, AsyncGraphDatabase
from neo4j.exceptions import ServiceUnavailable, SessionExpired

from common.service import EXIT_OK, Service, run_main
from common.sink import TransientWriteError
from common.waiting import wait_for_server
from graphinator.rows import graph_record
from graphinator.settings import GraphinatorSettings
from graphinator.writer import Neo4jWriter

log = structlog.get_logger(__name__)
# What a Neo4j that is not (yet) there, or still starting, raises.
_CONNECT_ERRORS = (ServiceUnavailable, SessionExpired, OSError, TransientWriteError)


def seed_resolver(seeds: list[tuple[str, int]]) -> Callable[[Address], Iterable[Address]] | None:
    """With several hosts in NEO4J_URI, the driver discovers the cluster from any of them."""
    if len(seeds) < 2:
        return None
    addresses = [Address(seed) for seed in seeds]

    def resolve(_: Address) -> Iterable[Address]:
        return addresses

    return resolve


async def serve(
    settings: GraphinatorSettings,
    stop: asyncio.Event,
    *,
    make_writer: Callable[..., Neo4jWriter] = Neo4jWriter,
) -> int:
    """Run graphinator until ``stop``; ``make_writer`` builds the writer (the bench runs
    the frozen reference statements through the same service)."""
    auth = (settings.neo4j_username, settings.neo4j_password.get_secret_value())
    resolver = seed_resolver(settings.neo4j_seed_hosts())
    extra: dict[str, Any] = {"resolver": resolver} if resolver else {}
    async with AsyncGraphDatabase.driver(settings.neo4j_seed_uri(), auth=auth, **extra) as driver:
        writer = make_writer(
            driver=driver,
            database=settings.neo4j_database,
            purge_veto_fraction=settings.purge_veto_fraction,
        )

        async def ready() -> bool:
            await driver.verify_connectivity()
            await writer.setup()
            return True

        if not await wait_for_server("neo4j", ready, errors=_CONNECT_ERRORS, stop=stop):
            return EXIT_OK
        service = Service(
            name="graphinator", settings=settings, writer=writer, projection=graph_record
        )
        return await service.run(stop)


DESCRIPTION = "Consumes the Discogs records from RabbitMQ into Neo4j, as a graph."


def main(argv: Sequence[str] | None = None) -> int:
    return run_main("graphinator", GraphinatorSettings, serve, description=DESCRIPTION, argv=argv)


if __name__ == "__main__":
    sys.exit(main())
