"""The PostgreSQL primary lost mid-load and its standby promoted: tableinator goes on there.

A primary and a synchronous streaming standby of the suite's own (scripts/pg_pair.sh,
ports 5451 and 5452); tableinator's ``POSTGRES_DSN`` names both hosts with
``target_session_attrs=read-write``, so libpq connects to whichever takes writes. The
broker is the shared one of `make services`, under the case's own prefix.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.records import DataType
from tests.faults import harness
from tests.faults.harness import Case, Dataset, Reliability

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.slow]

SCRIPT = harness.ROOT / "scripts" / "pg_pair.sh"
DSN = (
    "host=127.0.0.1,127.0.0.1 port=5451,5452 user=discogs password=discogs dbname=discogs "
    "target_session_attrs=read-write connect_timeout=5"
)
RECORDS = 200_000  # artists, in batch messages of 500
RESUME_LIMIT_S = 30.0
# Connection attempts the standby refuses before it is promoted: an outage of some seconds,
# over which the pool's reconnection backoff grows.
REFUSALS = 8


def pair(action: str, folder: Path) -> None:
    subprocess.run(["bash", str(SCRIPT), action, str(folder)], check=True, timeout=120)


@pytest.fixture
def pg_pair() -> Iterator[Path]:
    # Not under pytest's tmp_path: the postgres user must reach it (pytest's is root-only).
    folder = Path(tempfile.mkdtemp(prefix="pg-pair-"))
    pair("up", folder)
    try:
        yield folder
    finally:
        pair("down", folder)


@pytest.mark.timeout(300)
def test_tableinator_resumes_on_the_promoted_standby(
    pg_pair: Path, case: Case, reliability: Reliability
) -> None:
    data = Dataset({DataType.ARTISTS: harness.synthetic(DataType.ARTISTS, RECORDS)})
    harness.declare(case.prefix, ["tableinator"])
    harness.publish(case.prefix, harness.stream(data, batch=500) + harness.completions(data))
    consumer = case.consumer(
        "tableinator", harness.consumer_env("tableinator", case.prefix, dsn=DSN)
    )
    consumer.start()
    consumer.wait_consuming()

    reached = harness.in_mid_load([consumer], data.total, 0.2, 0.6)
    crashed = time.monotonic()
    pair("crash", pg_pair)
    at_crash = consumer.committed()
    # Promote only once tableinator found no writable host for a while: its write failed
    # and its pool was refused by the standby (still read-only) again and again, as while
    # a failover manager decides.
    harness.wait_until(
        lambda: refused_by_the_standby(consumer),
        within=60,
        what="tableinator's pool refused by the read-only standby",
    )
    promoted = time.monotonic()
    pair("promote", pg_pair)
    harness.wait_until(
        lambda: consumer.committed() > at_crash,
        within=RESUME_LIMIT_S,
        what="tableinator committing on the promoted standby",
        every=0.1,
    )
    resumed = time.monotonic() - promoted
    outage = promoted - crashed
    consumer.wait_complete([DataType.ARTISTS], within=240)

    dead = harness.dead_letter_depth(case.prefix, "tableinator")
    assert dead == 0
    health = consumer.health()
    assert health is not None
    assert not any(s["dead_lettered"] for s in health["types"].values())
    assert "password=discogs" not in consumer.text()
    reliability.check(
        case,
        data.expected(),
        dsn=DSN,
        dead_lettered={"tableinator": dead},
        note=f"primary crashed at {reached:.0%}, standby promoted {outage:.1f} s later; "
        f"writing again {resumed:.1f} s after the promotion",
    )


def refused_by_the_standby(consumer: harness.Consumer) -> bool:
    retried = consumer.events("write retry")
    refused = [e for e in consumer.logs() if "session is read-only" in str(e.get("event"))]
    return bool(retried) and len(refused) >= REFUSALS
