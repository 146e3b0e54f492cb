"""The stores during the benchmark: fresh databases, a cleared graph, and the ceilings.

A ceiling is the same rows written straight to the database with no broker: one COPY
into an unindexed table for PostgreSQL; the graphinator's own UNWIND statements in large
batches for Neo4j.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import orjson
import psycopg
from neo4j import AsyncGraphDatabase, GraphDatabase
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from common.records import DataType, Record
from graphinator.writer import Neo4jWriter

PG_ADMIN = os.environ.get(
    "TEST_POSTGRES_DSN", "postgresql://discogs:discogs@127.0.0.1:5432/discogs"
)
NEO4J_URI = os.environ.get("NEO4J_URI", "bolt://127.0.0.1:7687")
NEO4J_AUTH = (
    os.environ.get("NEO4J_USERNAME", "neo4j"),
    os.environ.get("NEO4J_PASSWORD", "discogs-pass"),
)


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new empty PostgreSQL database (its DSN), dropped afterwards."""
    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            params = conninfo_to_dict(PG_ADMIN)
            params["dbname"] = name
            yield make_conninfo(**params)  # type: ignore[arg-type]
        finally:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def clear_graph() -> None:
    # Relationships first, in chunks: detaching a Genre node with tens of thousands of
    # edges in one transaction exceeds the server's transaction memory pool.
    with GraphDatabase.driver(NEO4J_URI, auth=NEO4J_AUTH) as driver, driver.session() as s:
        s.run("MATCH ()-[r]->() CALL (r) { DELETE r } IN TRANSACTIONS OF 10000 ROWS").consume()
        s.run("MATCH (n) CALL (n) { DELETE n } IN TRANSACTIONS OF 10000 ROWS").consume()


def graph_counts() -> tuple[int, int]:
    with GraphDatabase.driver(NEO4J_URI, auth=NEO4J_AUTH) as driver:
        nodes = driver.execute_query("MATCH (n) RETURN count(n) AS c").records[0]["c"]
        rels = driver.execute_query("MATCH ()-[r]->() RETURN count(r) AS c").records[0]["c"]
    return nodes, rels


def postgres_ceiling(records: list[Record]) -> float:
    """Rows/s of one COPY of the records into an unindexed jsonb table."""
    with fresh_database() as dsn, psycopg.connect(dsn) as conn:
        conn.execute("CREATE TABLE ceiling (data_id text, hash text, data jsonb)")
        conn.commit()
        rows = [(r.id, r.sha256, orjson.dumps(r.data).decode()) for r in records]
        started = time.perf_counter()
        with (
            conn.cursor() as cur,
            cur.copy("COPY ceiling (data_id, hash, data) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        conn.commit()
        return len(rows) / (time.perf_counter() - started)


def neo4j_ceiling(data_type: DataType, records: list[Record], batch: int = 5000) -> float:
    """Records/s of the graphinator's statements run directly, in large batches."""

    async def run() -> float:
        async with AsyncGraphDatabase.driver(NEO4J_URI, auth=NEO4J_AUTH) as driver:
            writer = Neo4jWriter(driver=driver)
            await writer.setup()
            started = time.perf_counter()
            for i in range(0, len(records), batch):
                await writer.write(data_type, records[i : i + batch])
            return len(records) / (time.perf_counter() - started)

    clear_graph()
    try:
        return asyncio.run(run())
    finally:
        clear_graph()
