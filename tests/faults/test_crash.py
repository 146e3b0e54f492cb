"""A consumer killed (SIGKILL) or stopped (SIGTERM) mid-load loses and doubles nothing."""

from __future__ import annotations

import signal
import time

import pytest

from common.records import DataType
from tests.faults import harness
from tests.faults.harness import Case, Dataset, Reliability

pytestmark = [pytest.mark.faults, pytest.mark.integration]

# Small batches make the load long enough (thousands of commits) to be hit mid-way.
TUNING = {
    "graphinator": {"NEO4J_BATCH_SIZE": "50", "NEO4J_BATCH_FLUSH_INTERVAL": "0.2"},
    "tableinator": {"POSTGRES_BATCH_SIZE": "20", "POSTGRES_BATCH_FLUSH_INTERVAL": "0.2"},
}


def start_all(
    case: Case, request: pytest.FixtureRequest, services: tuple[str, ...], data: Dataset
) -> tuple[list[harness.Consumer], str | None]:
    """Fresh stores, the services' queues pre-filled with ``data``, the consumers started."""
    dsn = request.getfixturevalue("pg_database") if "tableinator" in services else None
    if "graphinator" in services:
        request.getfixturevalue("graph")
    harness.declare(case.prefix, services)
    harness.publish(case.prefix, harness.stream(data) + harness.completions(data))
    consumers = []
    for service in services:
        env = harness.consumer_env(service, case.prefix, dsn=dsn) | TUNING[service]
        consumers.append(case.consumer(service, env))
    for c in consumers:
        c.start()
    for c in consumers:
        c.wait_consuming()
    return consumers, dsn


@pytest.mark.parametrize("service", harness.SERVICES)
def test_sigkill_mid_load_then_restart(
    service: str, case: Case, reliability: Reliability, request: pytest.FixtureRequest
) -> None:
    data = Dataset.sample()
    (consumer,), dsn = start_all(case, request, (service,), data)

    reached = harness.in_mid_load([consumer], data.total, 0.15, 0.85)
    consumer.kill9()
    assert consumer.exit_codes[-1] == -signal.SIGKILL

    consumer.start()
    consumer.wait_consuming()
    consumer.wait_complete(DataType)
    dead = harness.dead_letter_depth(case.prefix, service)
    reliability.check(
        case,
        data.expected(),
        dsn=dsn,
        graph=service == "graphinator",
        dead_lettered={service: dead},
        note=f"SIGKILL at {reached:.0%} committed, then restart",
    )
    assert dead == 0


def test_sigterm_mid_load_drains_and_exits_then_restart(
    case: Case, reliability: Reliability, request: pytest.FixtureRequest
) -> None:
    data = Dataset.sample()
    consumers, dsn = start_all(case, request, harness.SERVICES, data)

    # Each consumer gets its SIGTERM in the middle of its own load (they run at very
    # different speeds, so no one moment is mid-load for both): poll both, signal each
    # as soon as it is past 15%, and fail if one was already past 85%.
    sent: dict[str, float] = {}
    reached = 1.0

    def signal_those_mid_load() -> bool:
        nonlocal reached
        for c in consumers:
            done = c.committed() / data.total
            if c.service in sent or done < 0.15:
                continue
            assert done <= 0.85, f"{c.service} ran past 85% before the fault: {done:.0%}"
            c.signal(signal.SIGTERM)
            sent[c.service] = time.monotonic()
            reached = min(reached, done)
        return len(sent) == len(consumers)

    harness.wait_until(signal_those_mid_load, within=120, what="both mid-load", every=0.02)
    took = 0.0
    for c in consumers:
        code = c.wait_exit(30)  # shutdown_timeout is 30 s; the drain of small batches is fast
        assert code == 0, f"{c.service} exited with {code}: {c.tail()}"
        assert c.events("stopped"), f"{c.service} did not log its drain: {c.tail()}"
        took = max(took, time.monotonic() - sent[c.service])

    for c in consumers:
        c.start()
    for c in consumers:
        c.wait_consuming()
        c.wait_complete(DataType)
    dead = {c.service: harness.dead_letter_depth(case.prefix, c.service) for c in consumers}
    reliability.check(
        case,
        data.expected(),
        dsn=dsn,
        graph=True,
        dead_lettered=dead,
        note=f"SIGTERM at {reached:.0%} committed; both exited 0 in {took:.1f}s; restart",
    )
    assert dead == {"graphinator": 0, "tableinator": 0}
