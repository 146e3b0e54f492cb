"""Duplicate deliveries and any arrival order give one final state; concurrent flushes
crowding shared Genre and Style nodes lose nothing."""

from __future__ import annotations

import psycopg
import pytest

from common.records import DataType
from extractor.envelopes import batch_body
from tests.faults import harness
from tests.faults.harness import VERSION, Case, Dataset, Message, Reliability

pytestmark = [pytest.mark.faults, pytest.mark.integration]


def load(case: Case, dsn: str, messages: list[Message], tag: str) -> None:
    """Both consumers on a fresh prefix, ``messages`` pre-filled, until complete."""
    prefix = f"{case.prefix}-{tag}"
    harness.declare(prefix, harness.SERVICES)
    harness.publish(prefix, messages)
    consumers = [
        case.consumer(s, harness.consumer_env(s, prefix, dsn=dsn), tag=f"-{tag}")
        for s in harness.SERVICES
    ]
    try:
        for c in consumers:
            c.start()
        for c in consumers:
            c.wait_complete(DataType, within=180)
            assert not any(s["dead_lettered"] for s in c.health()["types"].values())  # type: ignore[index]
    finally:
        for c in consumers:
            assert c.stop() == 0
        harness.delete_broker_objects(prefix)


def pg_rows(dsn: str) -> dict[str, list[tuple[object, ...]]]:
    with psycopg.connect(dsn) as conn:
        return {
            t.value: conn.execute(
                "SELECT data_id, hash, data FROM " + t.value + " ORDER BY data_id"  # fixed names
            ).fetchall()
            for t in DataType
        }


def test_duplicates_and_any_order_give_the_same_final_state(
    case: Case, reliability: Reliability, graph: None
) -> None:
    data = Dataset.sample(per_type=500)
    done = harness.completions(data)

    # Reference: each type in file order, each record once.
    with harness.fresh_database() as dsn:
        load(case, dsn, harness.stream(data) + done, "ordered")
        reference_pg = pg_rows(dsn)
    reference_graph = harness.graph_fingerprint()
    assert not harness.graph_interfered(), "another suite emptied the graph: rerun"

    # Every record twice (once alone, once inside a batch), the four types interleaved in
    # a random order, releases before the artists and labels they point at.
    twice: list[Message] = harness.stream(data)
    for data_type, records in data.records.items():
        twice += [
            (data_type, batch_body(data_type, VERSION, records[i : i + 40]))
            for i in range(0, len(records), 40)
        ]
    messages = harness.shuffled(twice, seed=20260101)
    harness.clear_graph()
    with harness.fresh_database() as dsn:
        load(case, dsn, messages + done, "shuffled")
        assert pg_rows(dsn) == reference_pg
        nodes, rels = harness.graph_fingerprint()
        assert not harness.graph_interfered(), "another suite emptied the graph: rerun"
        assert nodes == reference_graph[0], "graph nodes differ with order and duplicates"
        assert rels == reference_graph[1], "graph relationships differ with order and duplicates"
        reliability.check(
            case,
            data.expected(),
            dsn=dsn,
            graph=True,
            dead_lettered={"graphinator": 0, "tableinator": 0},
            note=f"{len(twice)} messages (every record twice) shuffled across types; "
            f"identical to an in-order single run ({len(rels)} relationships)",
        )


def test_concurrent_flushes_on_shared_genre_and_style_nodes(
    case: Case, reliability: Reliability, graph: None
) -> None:
    releases = harness.synthetic(DataType.RELEASES, 3000, seed=11)
    data = Dataset({DataType.RELEASES: releases})
    harness.declare(case.prefix, ["graphinator"])
    harness.publish(case.prefix, harness.stream(data) + harness.completions(data))
    env = harness.consumer_env("graphinator", case.prefix) | {
        "NEO4J_MAX_CONCURRENT_FLUSHES": "4",
        "NEO4J_BATCH_SIZE": "10",
        "NEO4J_BATCH_FLUSH_INTERVAL": "0.05",
    }
    consumer = case.consumer("graphinator", env)
    consumer.start()
    consumer.wait_complete([DataType.RELEASES], within=240)

    # Every release has exactly its genre and style edges (none lost to a retried flush).
    want = {
        int(r.id): len(set(r.data.get("genres", []))) + len(set(r.data.get("styles", [])))
        for r in releases
    }
    with harness.neo4j_driver() as driver:
        records, _, _ = driver.execute_query(
            "MATCH (r:Release) OPTIONAL MATCH (r)-[e:IS]->() RETURN r.id AS id, count(e) AS n"
        )
    got = {r["id"]: r["n"] for r in records}
    missing = {i: (n, got.get(i)) for i, n in want.items() if got.get(i) != n}
    assert not missing, f"releases with wrong genre/style edges: {list(missing.items())[:5]}"

    driver_retries = consumer.events("graph_write_retry")
    runtime_retries = consumer.events("write retry")
    metrics = consumer.get("/metrics")
    assert metrics is not None
    counted = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics[1].decode().splitlines()
        if line.startswith("write_retries_total")
    )
    assert counted == len(runtime_retries), "a runtime retry was not logged"
    assert all(e["level"] == "warning" for e in driver_retries + runtime_retries)
    reliability.check(
        case,
        data.expected(),
        graph=True,
        dead_lettered={"graphinator": harness.dead_letter_depth(case.prefix, "graphinator")},
        note=f"4 concurrent flushes of 10; {len(driver_retries)} graph_write_retry and "
        f"{len(runtime_retries)} write retry lines logged; all genre/style edges present",
    )
