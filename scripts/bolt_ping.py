"""Exit 0 when Neo4j answers ``RETURN 1`` over Bolt with the configured credentials."""

import os
import sys

from neo4j import GraphDatabase


def main() -> int:
    uri = os.environ.get("NEO4J_URI", "bolt://127.0.0.1:7687")
    auth = (
        os.environ.get("NEO4J_USERNAME", "neo4j"),
        os.environ.get("NEO4J_PASSWORD", "discogs-pass"),
    )
    try:
        with GraphDatabase.driver(uri, auth=auth, connection_timeout=2) as driver:
            driver.execute_query("RETURN 1")
    except Exception as e:  # noqa: BLE001 - any failure means "not ready yet"
        print(f"neo4j not ready: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
