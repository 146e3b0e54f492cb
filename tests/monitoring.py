"""The monitoring files (monitoring/...) as the tests read them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import yaml

ROOT = Path(__file__).resolve().parents[1]
MONITORING = ROOT / "monitoring"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "pipeline.json"
PROMETHEUS_YML = MONITORING / "prometheus.yml"
DATASOURCES = MONITORING / "grafana" / "provisioning" / "datasources" / "prometheus.yml"


def dashboard() -> dict[str, Any]:
    loaded = orjson.loads(DASHBOARD.read_bytes())
    assert isinstance(loaded, dict)
    return loaded


def expressions() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every query of the dashboard."""
    return [
        (panel["title"], target["expr"])
        for panel in dashboard()["panels"]
        for target in panel.get("targets", [])
    ]


def prometheus_config() -> dict[str, Any]:
    loaded = yaml.safe_load(PROMETHEUS_YML.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def datasource_uid() -> str:
    (source,) = yaml.safe_load(DATASOURCES.read_text(encoding="utf-8"))["datasources"]
    return str(source["uid"])
