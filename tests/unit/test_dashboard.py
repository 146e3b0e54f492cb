"""The provisioned Grafana dashboard is well formed and asks only for series that exist.

Whether each query returns data is checked against a real Prometheus in
tests/integration/test_monitoring.py.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from common.metrics import Metrics
from tests.monitoring import dashboard, datasource_uid, expressions

GRID_COLUMNS = 24
PANEL_TYPES = {"stat", "timeseries"}
# What the dashboard must show (issue 25), by the series that carry it.
REQUIRED = {
    "records/s": "rate(records_written_total",
    "pending": "records_pending",
    "queue depth": "queue_depth",
    "broker queue depth": "rabbitmq_detailed_queue_messages_ready",
    "ETA": "progress_remaining_records",
    "dead letters": "records_dead_lettered_total",
    "batch latency p50": "histogram_quantile(0.5,",
    "batch latency p99": "histogram_quantile(0.99,",
    "retries": "write_retries_total",
}
PROJECT_SERIES = re.compile(r"\b(?:records|queue|progress|batch|write)_[a-z_]+\b")


def project_series() -> set[str]:
    """Every series name a consumer's /metrics can expose."""
    return {s.name for family in Metrics("x").registry.collect() for s in family.samples} | {
        family.name for family in Metrics("x").registry.collect()
    }


@pytest.fixture(scope="module")
def board() -> dict[str, Any]:
    return dashboard()


def test_top_level_fields(board: dict[str, Any]) -> None:
    assert board["uid"] == "discogs-pipeline"
    assert board["title"]
    assert isinstance(board["schemaVersion"], int)
    assert board["panels"]
    assert board.get("id") is None  # provisioned: Grafana assigns the id


def test_panels_have_unique_ids_known_types_and_a_description(board: dict[str, Any]) -> None:
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert panel["type"] in PANEL_TYPES, panel["title"]
        assert panel["title"], panel["id"]
        assert panel["description"], panel["title"]


def test_panels_fit_the_grid_without_overlapping(board: dict[str, Any]) -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in board["panels"]:
        pos = panel["gridPos"]
        assert min(pos["w"], pos["h"]) > 0, panel["title"]
        assert 0 <= pos["x"] < pos["x"] + pos["w"] <= GRID_COLUMNS, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def test_every_query_uses_the_provisioned_datasource(board: dict[str, Any]) -> None:
    expected = {"type": "prometheus", "uid": datasource_uid()}
    for panel in board["panels"]:
        assert panel["datasource"] == expected, panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert refs, panel["title"]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == expected, panel["title"]
            assert target["expr"].strip(), panel["title"]


@pytest.mark.parametrize(("title", "expr"), expressions())
def test_queries_name_only_series_the_consumers_expose(title: str, expr: str) -> None:
    known = project_series()
    for name in PROJECT_SERIES.findall(expr):
        assert name in known, f"{title}: {name} is not a series of common/metrics.py"
    for opening, closing in ("()", "[]", "{}"):
        assert expr.count(opening) == expr.count(closing), f"{title}: unbalanced {opening}"


@pytest.mark.parametrize("what", list(REQUIRED))
def test_the_dashboard_shows(what: str) -> None:
    assert any(REQUIRED[what] in expr for _, expr in expressions()), what
