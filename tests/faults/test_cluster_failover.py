"""A RabbitMQ cluster node lost mid-load: the consumer and the extractor carry on elsewhere.

A three-node cluster of the suite's own (scripts/rabbit_cluster.sh, ports 5681-5683) with
the services' quorum queues on all three nodes, declared through node a so that their
leaders start there. Node a is the one each case takes away, by ``rabbitmqctl stop_app``
(a clean shutdown: the broker closes its connections) or by ``kill -9`` of its VM (the
sockets reset). tableinator writes to a throwaway PostgreSQL database.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import psycopg
import pytest

from bench.extractor_memory import write_dump
from common.records import DataType
from tests.faults import harness
from tests.faults.cluster import Cluster, dead_letter_queues
from tests.faults.harness import Case, Dataset, Reliability

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.slow]

CONSUMER_RECORDS = 200_000  # artists, in batch messages of 500
EXTRACTOR_RECORDS = 50_000  # releases, in one dump file (the extractor parses ~1,500/s here)
RESUME_LIMIT_S = 15.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    # Not under pytest's basetemp: another pytest run may prune that while the nodes run.
    c = Cluster(Path(tempfile.mkdtemp(prefix="rabbit-cluster-")))
    try:
        c.script("up", str(c.folder))
        yield c
    finally:
        c.script("down", str(c.folder))
        shutil.rmtree(c.folder, ignore_errors=True)


def faults(cluster: Cluster) -> dict[str, Callable[[str], None]]:
    return {"stop_app": cluster.stop_app, "kill": cluster.kill}


def tableinator(case: Case, cluster: Cluster, dsn: str, order: str) -> harness.Consumer:
    env = harness.consumer_env("tableinator", case.prefix, dsn=dsn)
    env["AMQP_URL"] = cluster.urls(*order)
    consumer = case.consumer("tableinator", env)
    consumer.start()
    consumer.wait_consuming()
    return consumer


def node_of(consumer: harness.Consumer) -> str | None:
    """The node the consumer is consuming from, or None while it is not."""
    health = consumer.health()
    if not health or health.get("status") != "ok":
        return None
    return str(health.get("node"))


def resumed_within(consumer: harness.Consumer, lost: str, started: float, limit: float) -> float:
    """Seconds from ``started`` until ``consumer`` consumes again on a node but ``lost``."""
    harness.wait_until(
        lambda: node_of(consumer) not in (None, lost),
        within=max(0.1, started + limit - time.monotonic()),
        what=f"{consumer.service} consuming again on another node than {lost}",
        every=0.1,
    )
    return time.monotonic() - started


def assert_no_dead_letters(cluster: Cluster, case: Case, consumer: harness.Consumer) -> None:
    assert cluster.depth("c", dead_letter_queues(case.prefix, "tableinator")) == 0
    health = consumer.health()
    assert health is not None
    assert not any(s["dead_lettered"] for s in health["types"].values())


@pytest.mark.timeout(300)
@pytest.mark.parametrize("fault", ["stop_app", "kill"])
def test_the_consumer_resumes_on_another_node(
    fault: str, cluster: Cluster, case: Case, pg_database: str, reliability: Reliability
) -> None:
    data = Dataset({DataType.ARTISTS: harness.synthetic(DataType.ARTISTS, CONSUMER_RECORDS)})
    cluster.declare("a", case.prefix, ["tableinator"])
    cluster.publish("c", case.prefix, harness.stream(data, batch=500) + harness.completions(data))
    consumer = tableinator(case, cluster, pg_database, "abc")
    assert node_of(consumer) == Cluster.address("a")

    reached = harness.in_mid_load([consumer], data.total, 0.2, 0.8)
    try:
        started = time.monotonic()
        faults(cluster)[fault]("a")
        resumed = resumed_within(consumer, Cluster.address("a"), started, RESUME_LIMIT_S)
        consumer.wait_complete([DataType.ARTISTS], within=240)
    finally:
        cluster.restore("a")
    failovers = consumer.events("amqp failover")
    assert [(e["old_node"], e["new_node"]) for e in failovers] == [
        (Cluster.address("a"), Cluster.address("b"))
    ]
    assert "discogs:discogs" not in consumer.text()
    assert_no_dead_letters(cluster, case, consumer)
    reliability.check(
        case,
        data.expected(),
        dsn=pg_database,
        note=f"node {fault} at {reached:.0%}; consuming again on another node after "
        f"{resumed:.1f} s",
    )


@pytest.mark.timeout(300)
@pytest.mark.parametrize("fault", ["stop_app", "kill"])
def test_the_extractor_fails_over_mid_file(
    fault: str, cluster: Cluster, case: Case, pg_database: str, tmp_path: Path
) -> None:
    dump = tmp_path / "discogs_20260101_releases.xml.gz"
    write_dump(dump, EXTRACTOR_RECORDS)
    cluster.declare("a", case.prefix, ["tableinator"])
    consumer = tableinator(case, cluster, pg_database, "cba")  # on node c: not in the way
    extractor = start_extractor(case, cluster, dump)
    try:
        part = 0.15 * EXTRACTOR_RECORDS
        harness.wait_until(  # the consumer keeps up: what it committed was published
            lambda: consumer.committed() >= part or extractor.poll() is not None,
            within=120,
            what="the extractor a part of the way through the file",
            every=0.1,
        )
        assert extractor.poll() is None, "the extractor finished before the fault"
        started, fault_at = time.monotonic(), time.time()
        faults(cluster)[fault]("a")
        code = extractor.wait(timeout=240)
        log = (case.logs / "extractor.log").read_text()
        assert code == 0, log[-3000:]
    finally:
        if extractor.poll() is None:
            extractor.kill()
        cluster.restore("a")
    events = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    failovers = [e for e in events if e["event"] == "amqp failover"]
    # The first to node b; a nacked message may move it on to another node after that.
    assert failovers, log[-3000:]
    assert (failovers[0]["old_node"], failovers[0]["new_node"]) == (
        Cluster.address("a"),
        Cluster.address("b"),
    )
    failed_over = datetime.fromisoformat(failovers[0]["timestamp"]).timestamp() - fault_at
    assert failed_over < RESUME_LIMIT_S
    assert "discogs:discogs" not in log
    consumer.wait_complete([DataType.RELEASES], within=300)
    assert_no_dead_letters(cluster, case, consumer)
    assert stored_ids(pg_database) == (EXTRACTOR_RECORDS, EXTRACTOR_RECORDS)
    print(  # noqa: T201 - the figures docs/scaling.md quotes
        f"extractor on node b {failed_over:.1f} s after the {fault}, "
        f"done {time.monotonic() - started:.1f} s after it"
    )


def start_extractor(case: Case, cluster: Cluster, dump: Path) -> subprocess.Popen[bytes]:
    env = harness.consumer_env("extractor", case.prefix) | {"AMQP_URL": cluster.urls("a", "b", "c")}
    with (case.logs / "extractor.log").open("wb") as out:
        return subprocess.Popen(
            [str(harness.BIN / "extractor"), "publish", str(dump), "--batch-size", "500"],
            env=harness.inherited_env() | env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stored_ids(dsn: str) -> tuple[int, int]:
    """Rows in ``releases`` and distinct ids 1..N among them."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT data_id) FILTER "
            "(WHERE data_id::bigint BETWEEN 1 AND %s) FROM releases",
            (EXTRACTOR_RECORDS,),
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])
