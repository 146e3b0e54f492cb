"""Cold starts in any order: a consumer started while one of its servers is down waits
for it (one log line per attempt), connects once it is there, then stores everything."""

from __future__ import annotations

import time

import pytest

from common.records import DataType
from tests.faults import harness
from tests.faults.harness import Case, Dataset, Reliability
from tests.faults.test_outages import assert_nothing_dead_lettered

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.slow]

# The consumers that need each server, and the name they give it in their log lines.
NEEDED_BY = {
    "rabbitmq": harness.SERVICES,
    "postgres": ("tableinator",),
    "neo4j": ("graphinator",),
}
LOGGED_AS = {"rabbitmq": "rabbitmq", "postgres": "postgresql", "neo4j": "neo4j"}
DOWN_FOR_S = 30


def waits_logged(consumer: harness.Consumer, server: str) -> list[dict[str, object]]:
    return [e for e in consumer.events("waiting for server") if e.get("server") == server]


@pytest.mark.timeout(600)
@pytest.mark.parametrize("server", list(NEEDED_BY))
def test_consumer_started_before_its_server(
    server: str, case: Case, reliability: Reliability, request: pytest.FixtureRequest
) -> None:
    services = NEEDED_BY[server]
    dsn = request.getfixturevalue("pg_database") if "tableinator" in services else None
    if "graphinator" in services:
        request.getfixturevalue("graph")
    data = Dataset.sample()
    consumers = [case.consumer(s, harness.consumer_env(s, case.prefix, dsn=dsn)) for s in services]
    logged_as = LOGGED_AS[server]

    with harness.server_down(server):
        started = time.monotonic()
        for c in consumers:
            c.start()

        def waited_long_enough() -> bool:
            for c in consumers:
                if not c.running:
                    raise AssertionError(f"{c.service} exited while waiting: {c.tail()}")
            return time.monotonic() - started >= DOWN_FOR_S and all(
                len(waits_logged(c, logged_as)) >= 3 for c in consumers
            )

        harness.wait_until(
            waited_long_enough, within=DOWN_FOR_S + 60, what=f"consumers waiting for {server}"
        )
    back_at = time.monotonic()

    for c in consumers:
        c.wait_consuming(within=120)
        lines = waits_logged(c, logged_as)
        assert all(float(e["retry_in_s"]) <= 30 for e in lines)  # type: ignore[arg-type]
        assert [e["attempt"] for e in lines] == list(range(1, len(lines) + 1))
    connected_after = time.monotonic() - back_at

    harness.declare(case.prefix, services)
    harness.publish(case.prefix, harness.stream(data) + harness.completions(data))
    for c in consumers:
        c.wait_complete(DataType, within=240)
        assert c.exit_codes == [], f"{c.service} restarted: {c.exit_codes}"
    dead = assert_nothing_dead_lettered(case, consumers)
    reliability.check(
        case,
        data.expected(),
        dsn=dsn,
        graph="graphinator" in services,
        dead_lettered=dead,
        note=(
            f"started {DOWN_FOR_S}s before {server}; consuming {connected_after:.0f}s "
            "after it was back"
        ),
    )
