"""Fault and bad-input suite: real consumers, real servers, faults injected mid-load.

Not part of `make test`: it restarts the shared servers and takes minutes. It runs only
with ``RUN_FAULTS=1`` (`make test-faults` sets it); otherwise every test here is skipped
with a reason saying so.

Each case records what was published and what each store holds; the session writes the
rows to ``bench/results/reliability.json`` (`scripts/reliability_table.py` renders them
into docs/reliability.md).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.faults import harness

ENABLED = os.environ.get("RUN_FAULTS") == "1"
SKIP_REASON = (
    "fault suite not run: it restarts the shared servers and takes minutes; "
    "set RUN_FAULTS=1 or run `make test-faults`"
)
HERE = Path(__file__).resolve().parent
RESULTS = harness.ROOT / "bench" / "results" / "reliability.json"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "faults: fault and bad-input suite on real servers (RUN_FAULTS=1)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if ENABLED:
        return
    skip = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(skip)


def pytest_report_header(config: pytest.Config) -> str | None:
    return None if ENABLED else f"tests/faults: {SKIP_REASON}"


@pytest.fixture(scope="session")
def reliability() -> Iterator[harness.Reliability]:
    collected = harness.Reliability()
    started = time.monotonic()
    yield collected
    if not collected.rows:
        return
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
        },
        "suite_seconds": round(time.monotonic() - started, 1),
        "rows": collected.rows,
    }
    tmp = RESULTS.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    tmp.replace(RESULTS)


@pytest.fixture
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[harness.Case]:
    """A unique prefix and log folder; consumers stopped and broker objects removed after."""
    prefix = f"faults-{uuid.uuid4().hex[:8]}"
    logs = tmp_path / "logs"
    logs.mkdir()
    c = harness.Case(request.node.name, prefix, logs)
    try:
        yield c
    finally:
        for consumer in c.consumers:
            try:
                consumer.stop()
            except Exception as e:  # noqa: BLE001 - cleanup must reach the broker objects
                sys.stderr.write(f"stopping {consumer.service}: {e!r}\n")
        if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
            for consumer in c.consumers:
                sys.stderr.write(f"--- {consumer.service} log tail\n{consumer.tail(40)}\n")
        harness.delete_broker_objects(prefix)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for tableinator."""
    with harness.fresh_database() as dsn:
        yield dsn


@pytest.fixture
def graph() -> None:
    """An emptied graph. Community has one database, and other suites clear it: wait
    (bounded) until no other pytest runs, so that nobody empties it under this case."""
    harness.wait_for_quiet(limit=300)
    harness.clear_graph()
