"""graphinator's entry point: settings, the Neo4j driver, the writer, the consumer."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterable
from typing import Any

import structlog
from neo4j import Address, AsyncGraphDatabase
from neo4j.exceptions import ServiceUnavailable, SessionExpired

from common.service import EXIT_OK, Service, retry_until, run_main
from graphinator.settings import GraphinatorSettings
from graphinator.writer import Neo4jWriter

log = structlog.get_logger(__name__)


def _resolver(seeds: list[tuple[str, int]]) -> Callable[[Address], Iterable[Address]] | None:
    """With several hosts in NEO4J_URI, the driver discovers the cluster from any of them."""
    if len(seeds) < 2:
        return None
    addresses = [Address(seed) for seed in seeds]

    def resolve(_: Address) -> Iterable[Address]:
        return addresses

    return resolve


async def serve(settings: GraphinatorSettings, stop: asyncio.Event) -> int:
    auth = (settings.neo4j_username, settings.neo4j_password.get_secret_value())
    resolver = _resolver(settings.neo4j_seed_hosts())
    extra: dict[str, Any] = {"resolver": resolver} if resolver else {}
    async with AsyncGraphDatabase.driver(settings.neo4j_seed_uri(), auth=auth, **extra) as driver:

        async def ready() -> bool:
            try:
                await driver.verify_connectivity()
            except (ServiceUnavailable, SessionExpired, OSError) as e:
                log.warning("neo4j not ready", error=str(e))
                return False
            return True

        if not await retry_until("neo4j", ready, stop=stop):
            return EXIT_OK
        writer = Neo4jWriter(
            driver=driver,
            database=settings.neo4j_database,
            purge_veto_fraction=settings.purge_veto_fraction,
        )
        await writer.setup()
        return await Service(name="graphinator", settings=settings, writer=writer).run(stop)


def main() -> int:
    return run_main("graphinator", GraphinatorSettings, serve)


if __name__ == "__main__":
    sys.exit(main())
