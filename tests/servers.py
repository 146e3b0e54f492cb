"""Where the test servers are (the defaults match `make services`), and readiness checks.

A server that does not answer is a test failure naming it and how to start it, never a skip.
"""

from __future__ import annotations

import os

AMQP_URL = os.environ.get("AMQP_URL", "amqp://discogs:discogs@127.0.0.1:5672/")
POSTGRES_ADMIN_DSN = os.environ.get(
    "TEST_POSTGRES_DSN", "postgresql://discogs:discogs@127.0.0.1:5432/discogs"
)
NEO4J_URI = os.environ.get("NEO4J_URI", "bolt://127.0.0.1:7687")
NEO4J_AUTH = (
    os.environ.get("NEO4J_USERNAME", "neo4j"),
    os.environ.get("NEO4J_PASSWORD", "discogs-pass"),
)


def missing(server: str, error: BaseException) -> str:
    return (
        f"{server} is not reachable ({type(error).__name__}: {error}). "
        "Integration tests need the real servers: run `make services` "
        "(or `make test`, which starts them)."
    )
