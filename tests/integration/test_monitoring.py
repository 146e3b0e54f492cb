"""The monitoring profile against real parts: Debian's Prometheus (installed by `make
services`) runs monitoring/prometheus.yml, its targets moved to local ports, while the
samples go through the extractor and both consumers; every dashboard query must then
return data through Prometheus's HTTP API.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from neo4j import AsyncDriver, AsyncGraphDatabase
from psycopg_pool import AsyncConnectionPool

from common.records import DataType
from common.service import Service
from extractor.publish import PublishOptions, collect_dumps, publish_dumps
from graphinator.settings import GraphinatorSettings
from graphinator.writer import Neo4jWriter
from tableinator.settings import TableinatorSettings
from tableinator.writer import PostgresWriter
from tests import servers
from tests.conftest import clear_graph
from tests.monitoring import PROMETHEUS_YML, expressions, prometheus_config
from tests.support import eventually

pytestmark = pytest.mark.integration

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"
RABBITMQ_PROMETHEUS = "127.0.0.1:15692"


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: run `make services` (Debian's prometheus)")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def local_config(ports: dict[str, int]) -> dict[str, Any]:
    """monitoring/prometheus.yml with every job's targets on this host, scraped each second."""
    config = prometheus_config()
    config["global"] = {**config.get("global", {}), "scrape_interval": "1s"}
    targets = {name: f"127.0.0.1:{port}" for name, port in ports.items()}
    targets["rabbitmq"] = RABBITMQ_PROMETHEUS
    for job in config["scrape_configs"]:
        job.pop("dns_sd_configs", None)
        job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
    return config


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return orjson.loads(response.read())


@contextlib.contextmanager
def prometheus(tmp_path: Path, config: dict[str, Any]) -> Iterator[str]:
    """A Prometheus server of its own on a free port; yields its base URL."""
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            tool("prometheus"),
            f"--config.file={path}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


async def ready(base: str) -> bool:
    try:
        await asyncio.to_thread(get_json, f"{base}/api/v1/status/buildinfo")
    except OSError:
        return False
    return True


async def targets_up(base: str, jobs: set[str]) -> bool:
    active = (await asyncio.to_thread(get_json, f"{base}/api/v1/targets"))["data"]["activeTargets"]
    return {t["labels"]["job"] for t in active if t["health"] == "up"} >= jobs


async def query(base: str, expr: str) -> list[Any]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    answer = await asyncio.to_thread(get_json, url)
    assert answer["status"] == "success", answer
    result = answer["data"]["result"]
    assert isinstance(result, list)
    return result


@contextlib.asynccontextmanager
async def consumers(prefix: str, dsn: str) -> AsyncIterator[dict[str, Service]]:
    """Graphinator and tableinator on real Neo4j and PostgreSQL, progress every half second."""
    common: dict[str, Any] = {
        "amqp_url": servers.AMQP_URL,
        "discogs_exchange_prefix": prefix,
        "health_port": 0,
        "progress_interval": 0.5,
    }
    graph_settings = GraphinatorSettings(**common)
    table_settings = TableinatorSettings(**common, postgres_dsn=dsn)
    stop = asyncio.Event()
    async with (
        AsyncGraphDatabase.driver(servers.NEO4J_URI, auth=servers.NEO4J_AUTH) as driver,
        AsyncConnectionPool(dsn, min_size=1, max_size=6, open=False) as pool,
    ):
        await pool.open(wait=True, timeout=30)
        graph_writer, table_writer = Neo4jWriter(driver=driver), PostgresWriter(pool=pool)
        await graph_writer.setup()
        await table_writer.setup()
        services = {
            "graphinator": Service(
                name="graphinator", settings=graph_settings, writer=graph_writer
            ),
            "tableinator": Service(
                name="tableinator", settings=table_settings, writer=table_writer
            ),
        }
        tasks = [asyncio.create_task(s.run(stop)) for s in services.values()]
        try:
            await eventually(
                lambda: all(s.status()[0] for s in services.values()), within=30, what="up"
            )
            yield services
        finally:
            stop.set()
            codes = await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
            assert codes == [0, 0]


def health_port(service: Service) -> int:
    assert service.health is not None
    return service.health.port


def load_finished(services: dict[str, Service]) -> bool:
    """Every type completed in both consumers, and a progress tick has seen it since."""
    return all(
        stats.extraction_complete is not None
        and stats.progress is not None
        and stats.progress.eta_s == 0
        for service in services.values()
        for stats in service.metrics.types.values()
    )


def test_promtool_accepts_the_config() -> None:
    run = subprocess.run(
        [tool("promtool"), "check", "config", str(PROMETHEUS_YML)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    rules = [
        {"record": f"dashboard:query_{i}", "expr": e} for i, (_, e) in enumerate(expressions())
    ]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    run = subprocess.run(
        [tool("promtool"), "check", "rules", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.slow
async def test_every_dashboard_query_returns_data(
    tmp_path: Path, exchange_prefix: str, pg_dsn: str, neo4j_driver: AsyncDriver
) -> None:
    async with consumers(exchange_prefix, pg_dsn) as services:
        ports = {name: health_port(service) for name, service in services.items()}
        with prometheus(tmp_path, local_config(ports)) as base:
            await eventually(lambda: ready(base), within=30, what="prometheus ready")
            jobs = {"graphinator", "tableinator", "rabbitmq"}
            await eventually(lambda: targets_up(base, jobs), within=30, what="targets up")
            await publish_dumps(
                collect_dumps([SAMPLES]),
                url=servers.AMQP_URL,
                prefix=exchange_prefix,
                options=PublishOptions(),
            )
            await eventually(lambda: load_finished(services), within=240, what="load done")
            empty = dict(expressions())
            deadline = time.monotonic() + 30
            while empty and time.monotonic() < deadline:
                for title, expr in list(empty.items()):
                    if await query(base, expr):
                        del empty[title]
                await asyncio.sleep(0.5)
            assert not empty, f"dashboard queries without data: {empty}"
            per_type = await query(base, 'progress_eta_seconds{job="tableinator"}')
            assert {r["metric"]["data_type"] for r in per_type} == {t.value for t in DataType}
    await clear_graph(neo4j_driver)
