"""Server restarts and a 60-second database outage mid-load: the consumers recover by
themselves, nothing is dead-lettered for an outage, memory stays bounded."""

from __future__ import annotations

import threading
import time

import pytest

from common.records import DataType
from tests.faults import harness
from tests.faults.harness import Case, Dataset, Reliability
from tests.faults.test_crash import start_all

pytestmark = [pytest.mark.faults, pytest.mark.integration]

SERVER_SERVICES = {
    "rabbitmq": harness.SERVICES,
    "postgres": ("tableinator",),
    "neo4j": ("graphinator",),
}


def assert_nothing_dead_lettered(case: Case, consumers: list[harness.Consumer]) -> dict[str, int]:
    dead = {c.service: harness.dead_letter_depth(case.prefix, c.service) for c in consumers}
    for c in consumers:
        health = c.health()
        assert health is not None
        counters = {t: s["dead_lettered"] for t, s in health["types"].items()}
        assert not any(counters.values()), f"{c.service} dead-lettered: {counters}"
    assert not any(dead.values()), f"dead-letter queues are not empty: {dead}"
    return dead


@pytest.mark.timeout(420)
@pytest.mark.parametrize("server", list(SERVER_SERVICES))
def test_server_restart_mid_load(
    server: str, case: Case, reliability: Reliability, request: pytest.FixtureRequest
) -> None:
    services = SERVER_SERVICES[server]
    data = Dataset.sample()
    consumers, dsn = start_all(case, request, services, data)

    reached = harness.in_mid_load(consumers, data.total, 0.03, 0.97)
    with harness.server_down(server):
        down_at = time.monotonic()
    outage = time.monotonic() - down_at

    for c in consumers:
        c.wait_complete(DataType, within=240)
        assert c.running, f"{c.service} exited: {c.exit_codes}"
        assert c.exit_codes == [], f"{c.service} restarted: {c.exit_codes}"
    dead = assert_nothing_dead_lettered(case, consumers)
    reliability.check(
        case,
        data.expected(),
        dsn=dsn,
        graph="graphinator" in services,
        dead_lettered=dead,
        note=f"{server} restarted at {reached:.0%} committed (back after {outage:.0f}s)",
    )


class Sampler(threading.Thread):
    """Samples a consumer's /health pending total and VmRSS every 0.2 s."""

    def __init__(self, consumer: harness.Consumer) -> None:
        super().__init__(daemon=True)
        self.consumer = consumer
        self.halt = threading.Event()
        self.max_pending = 0
        self.max_rss_kb = 0
        self.samples = 0
        self.health_failures = 0

    def run(self) -> None:
        while not self.halt.wait(0.2):
            health = self.consumer.health()
            if health is None:
                self.health_failures += 1
            else:
                pending = sum(int(s["pending"]) for s in health["types"].values())
                self.max_pending = max(self.max_pending, pending)
            self.max_rss_kb = max(self.max_rss_kb, self.consumer.rss_kb())
            self.samples += 1


OUTAGE_S = 60
MAX_PENDING = 2000
# RSS bound: the baseline (interpreter, drivers, ~100 MB) plus what the limits let the
# process hold: MAX_PENDING parsed records (a 3 KB release is ~30 KB of Python objects:
# 60 MB) and the prefetch window of undecoded bodies (4 queues x 2 x batch size = 800
# single-record messages, ~3 MB). 150 MB over the baseline leaves room for allocator
# slack; holding the whole backlog (BACKLOG releases, ~300 MB of Python objects) cannot
# fit under it.
RSS_GROWTH_BOUND_KB = 150 * 1024
BACKLOG = 20_000


@pytest.mark.timeout(480)
@pytest.mark.parametrize("server", ["postgres", "neo4j"])
def test_database_outage_60s_under_full_load(
    server: str, case: Case, reliability: Reliability, request: pytest.FixtureRequest
) -> None:
    service = "tableinator" if server == "postgres" else "graphinator"
    prefix = "POSTGRES" if server == "postgres" else "NEO4J"
    data = Dataset.sample(extra_releases=BACKLOG)
    dsn = request.getfixturevalue("pg_database") if service == "tableinator" else None
    if service == "graphinator":
        request.getfixturevalue("graph")
    harness.declare(case.prefix, [service])
    harness.publish(case.prefix, harness.stream(data))
    env = harness.consumer_env(service, case.prefix, dsn=dsn) | {
        f"{prefix}_BATCH_SIZE": "100",
        f"{prefix}_MAX_PENDING": str(MAX_PENDING),
        # One write at a time: the backlog must outlast the server's own (graceful) stop,
        # which lets running transactions finish first.
        f"{prefix}_MAX_CONCURRENT_FLUSHES": "1",
    }
    consumer = case.consumer(service, env)
    consumer.start()
    consumer.wait_consuming()
    baseline_kb = consumer.rss_kb()
    sampler = Sampler(consumer)
    sampler.start()
    try:
        reached = harness.in_mid_load([consumer], data.total, 0.02, 0.3)
        with harness.server_down(server):
            stopped = time.monotonic()
            # The producer carries on: completion messages arrive while the database is down.
            harness.publish(case.prefix, harness.completions(data))
            # The outage itself is timed; the consumer is checked all along by the sampler.
            while time.monotonic() - stopped < OUTAGE_S:
                assert consumer.running, f"{service} died in the outage: {consumer.tail()}"
                time.sleep(1)
            during = consumer.committed()
        consumer.wait_complete(DataType, within=300)
    finally:
        sampler.halt.set()
        sampler.join()

    # Whatever was in flight when the server went away waits it out: batch writes
    # ("write retry", or the driver's own "graph_write_retry") or, when the backlog was
    # already committed before the stop took effect, the completion work ("completion retry").
    retries = consumer.events("write retry", "graph_write_retry", "completion retry")
    growth_kb = sampler.max_rss_kb - baseline_kb
    dead = assert_nothing_dead_lettered(case, [consumer])
    reliability.check(
        case,
        data.expected(),
        dsn=dsn,
        graph=service == "graphinator",
        dead_lettered=dead,
        note=(
            f"{server} down {OUTAGE_S}s at {reached:.0%}; max pending {sampler.max_pending}"
            f" (limit {MAX_PENDING}); RSS {baseline_kb // 1024}->{sampler.max_rss_kb // 1024}"
            f" MB; {len(retries)} write retries logged"
        ),
    )
    assert sampler.samples > 100
    assert sampler.max_pending <= MAX_PENDING, sampler.max_pending
    assert growth_kb <= RSS_GROWTH_BOUND_KB, f"RSS grew {growth_kb // 1024} MB"
    assert retries, "the outage produced no logged retry"
    assert during < data.total, "the load was over before the outage ended"
