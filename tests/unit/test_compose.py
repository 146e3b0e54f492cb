"""docker-compose.yml agrees with the code and the test servers, and can be scaled.

Parsed with PyYAML (no Docker needed): service names, images, healthchecks, start order,
ports, and every environment variable against the settings classes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from extractor.settings import ExtractorSettings
from graphinator.settings import GraphinatorSettings
from tableinator.settings import TableinatorSettings

ROOT = Path(__file__).resolve().parents[2]
SERVERS = {"rabbitmq", "postgres", "neo4j"}
MONITORING = {"prometheus", "grafana"}  # only with `--profile monitoring`
# Debian 12's prometheus, which `make services` installs and the monitoring tests run.
PROMETHEUS_TEST_VERSION = "2.42"
CONSUMERS: dict[str, type[BaseSettings]] = {
    "graphinator": GraphinatorSettings,
    "tableinator": TableinatorSettings,
}
STORE = {"graphinator": "neo4j", "tableinator": "postgres"}
SECRET_FILES = {"AMQP_URL", "NEO4J_PASSWORD", "POSTGRES_DSN", "POSTGRES_PASSWORD"}
# Deliberate differences from the code's defaults, with the reason.
COMPOSE_DEFAULTS = {"LOG_FORMAT": "json"}  # containers log JSON lines; the image sets it too
INTERPOLATION = re.compile(r"^\$\{(?P<name>[A-Z0-9_]+):-(?P<default>[^}]*)\}$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = compose["services"]
    assert isinstance(found, dict)
    return found


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    assert isinstance(env, dict), "environment must be a mapping (NAME: value)"
    return {str(k): str(v) for k, v in env.items()}


def known_names(cls: type[BaseSettings]) -> set[str]:
    names = {f.upper() for f in cls.model_fields}
    return names | {f"{n}_FILE" for n in SECRET_FILES & names}


def field_default(cls: type[BaseSettings], name: str) -> Any:
    value = cls.model_fields[name.lower()].default
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def neo4j_test_version() -> str:
    pom = (ROOT / "services" / "neo4j" / "pom.xml").read_text(encoding="utf-8")
    match = re.search(r"<neo4j.version>(\d+\.\d+)\.\d+</neo4j.version>", pom)
    assert match, "services/neo4j/pom.xml names no neo4j.version"
    return match.group(1)


def test_service_names(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == SERVERS | set(CONSUMERS) | {"extractor"} | MONITORING


def test_server_images_match_the_test_servers(services: dict[str, dict[str, Any]]) -> None:
    rabbit = services["rabbitmq"]["image"]
    assert rabbit.startswith("rabbitmq:3.10"), "Debian 12 (make services) ships RabbitMQ 3.10"
    assert "management" in rabbit
    assert re.fullmatch(r"postgres:15([.-].*)?", services["postgres"]["image"])
    neo4j = services["neo4j"]["image"]
    assert neo4j.startswith(f"neo4j:{neo4j_test_version()}")
    assert "community" in neo4j


def test_program_services_build_the_project_image(services: dict[str, dict[str, Any]]) -> None:
    for name in (*CONSUMERS, "extractor"):
        assert services[name].get("build") == ".", name
        assert services[name]["command"][0] == name


def test_every_long_running_service_has_a_healthcheck(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in SERVERS | set(CONSUMERS):
        check = services[name].get("healthcheck") or {}
        assert check.get("test"), f"{name} has no healthcheck"
        assert not check.get("disable"), name
    # The extractor runs once and serves no /health.
    assert services["extractor"].get("healthcheck", {}).get("disable") is True


def test_consumers_start_after_their_servers(services: dict[str, dict[str, Any]]) -> None:
    for name in CONSUMERS:
        deps = services[name]["depends_on"]
        assert set(deps) == {"rabbitmq", STORE[name]}, name
        for dep in deps.values():
            assert dep["condition"] == "service_healthy", name


def test_extractor_starts_after_the_consumers_and_is_not_restarted(
    services: dict[str, dict[str, Any]],
) -> None:
    extractor = services["extractor"]
    deps = extractor["depends_on"]
    assert set(deps) == set(CONSUMERS)
    for dep in deps.values():
        assert dep["condition"] == "service_healthy"
    assert str(extractor.get("restart", "no")) == "no"
    assert extractor["command"][:2] == ["extractor", "publish"]


def test_extractor_loads_the_samples_unless_dump_dir_is_set(
    services: dict[str, dict[str, Any]],
) -> None:
    extractor = services["extractor"]
    target = extractor["command"][2]
    mounts = [v for v in extractor["volumes"] if v.split(":")[-2:][0] == target]
    assert mounts == [f"${{DUMP_DIR:-./data/samples}}:{target}:ro"]
    assert (ROOT / "data" / "samples").is_dir()


def test_extractor_keeps_its_manifests_in_a_named_volume(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    extractor = services["extractor"]
    folder = extractor["environment"]["EXTRACTOR_STATE_DIR"]
    assert f"extractor-state:{folder}" in extractor["volumes"]
    assert "extractor-state" in compose["volumes"]
    assert f"mkdir {folder} && chown pipeline {folder}" in (ROOT / "Dockerfile").read_text()


def test_nothing_prevents_scaling(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        assert "container_name" not in service, f"{name}: container_name blocks --scale"
    for name in CONSUMERS:
        assert "ports" not in services[name], f"{name}: host ports block --scale"


def test_server_ports_are_bound_to_localhost(services: dict[str, dict[str, Any]]) -> None:
    for name in SERVERS | MONITORING:
        for port in services[name].get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port} is open to the network"


@pytest.mark.parametrize("name", list(CONSUMERS))
def test_consumer_health_port_is_the_one_checked(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    service = services[name]
    port = environment(service).get("HEALTH_PORT") or str(
        field_default(CONSUMERS[name], "HEALTH_PORT")
    )
    assert [str(p) for p in service.get("expose", [])] == [port]
    assert f"127.0.0.1:{port}/health" in " ".join(service["healthcheck"]["test"])


@pytest.mark.parametrize("name", list(CONSUMERS))
def test_consumer_environment_is_known_settings(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    env = environment(services[name])
    unknown = set(env) - known_names(CONSUMERS[name])
    assert not unknown, f"{name} sets variables no setting reads: {sorted(unknown)}"


def test_extractor_environment_is_known_settings(services: dict[str, dict[str, Any]]) -> None:
    unknown = set(environment(services["extractor"])) - known_names(ExtractorSettings)
    assert not unknown, f"extractor sets variables no setting reads: {sorted(unknown)}"


@pytest.mark.parametrize("name", [*CONSUMERS, "extractor"])
def test_no_variable_is_set_empty(services: dict[str, dict[str, Any]], name: str) -> None:
    """An empty value is not 'unset' to the settings: AMQP_PREFETCH= stops a consumer."""
    for key, value in environment(services[name]).items():
        match = INTERPOLATION.match(value)
        shown = match.group("default") if match else value
        assert shown != "", f"{name}: {key} defaults to an empty value"


@pytest.mark.parametrize("name", list(CONSUMERS))
def test_tuning_defaults_are_the_settings_defaults(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    cls = CONSUMERS[name]
    for key, value in environment(services[name]).items():
        match = INTERPOLATION.match(value)
        if not match or key.endswith("_FILE"):
            continue
        assert match.group("name") == key, f"{name}: {key} reads ${{{match.group('name')}}}"
        default = COMPOSE_DEFAULTS.get(key, field_default(cls, key))
        shown = match.group("default")
        if isinstance(default, int | float) and not isinstance(default, bool):
            assert float(shown) == float(default), f"{name}: {key}={shown}, code says {default}"
        else:
            assert shown == str(default), f"{name}: {key}={shown}, code says {default}"


@pytest.mark.parametrize("name", list(CONSUMERS))
def test_batch_tuning_is_set_explicitly(services: dict[str, dict[str, Any]], name: str) -> None:
    prefix = {"graphinator": "NEO4J", "tableinator": "POSTGRES"}[name]
    env = environment(services[name])
    for suffix in ("BATCH_SIZE", "BATCH_FLUSH_INTERVAL", "MAX_PENDING", "MAX_CONCURRENT_FLUSHES"):
        assert f"{prefix}_{suffix}" in env, f"{name}: {prefix}_{suffix} is not set"


@pytest.mark.parametrize("name", list(CONSUMERS))
def test_stop_grace_outlasts_the_drain(services: dict[str, dict[str, Any]], name: str) -> None:
    """Docker's SIGKILL must not cut the drain that SHUTDOWN_TIMEOUT allows."""
    grace = str(services[name].get("stop_grace_period", "10s"))
    match = re.fullmatch(r"(\d+)s", grace)
    assert match, f"{name}: write stop_grace_period in seconds, e.g. 45s"
    value = environment(services[name]).get("SHUTDOWN_TIMEOUT", "")
    interp = INTERPOLATION.match(value)
    timeout = float(interp.group("default") if interp else value or 30.0)
    assert int(match.group(1)) > timeout


def test_consumers_restart_and_are_not_run_once(services: dict[str, dict[str, Any]]) -> None:
    for name in CONSUMERS:
        assert services[name].get("restart") in {"unless-stopped", "always", "on-failure"}


def monitoring_file(relative: str) -> Any:
    return yaml.safe_load((ROOT / "monitoring" / relative).read_text(encoding="utf-8"))


def bind_mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> repository path of each ``./...`` volume."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target, *_ = str(volume).split(":")
        if source.startswith("./"):
            mounts[target] = source.removeprefix("./")
    return mounts


def test_monitoring_runs_only_in_its_profile(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        expected = ["monitoring"] if name in MONITORING else None
        assert service.get("profiles") == expected, name


def test_monitoring_mounts_files_of_the_repository(services: dict[str, dict[str, Any]]) -> None:
    for name in (*MONITORING, "rabbitmq"):
        for target, source in bind_mounts(services[name]).items():
            assert (ROOT / source).exists(), f"{name}: {source} (mounted at {target}) is missing"
    mounts = bind_mounts(services["prometheus"])
    assert mounts["/etc/prometheus/prometheus.yml"] == "monitoring/prometheus.yml"
    assert "--config.file=/etc/prometheus/prometheus.yml" in services["prometheus"]["command"]


def test_prometheus_is_the_version_the_tests_run(services: dict[str, dict[str, Any]]) -> None:
    assert services["prometheus"]["image"].startswith(
        f"prom/prometheus:v{PROMETHEUS_TEST_VERSION}."
    )


@pytest.mark.parametrize("name", list(CONSUMERS))
def test_prometheus_scrapes_every_replica_on_its_health_port(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    jobs = {job["job_name"]: job for job in monitoring_file("prometheus.yml")["scrape_configs"]}
    port = environment(services[name]).get("HEALTH_PORT")
    assert jobs[name].get("metrics_path", "/metrics") == "/metrics"
    # Docker's DNS answers a service name with every replica's address.
    assert jobs[name]["dns_sd_configs"] == [{"names": [name], "type": "A", "port": int(port)}]


def test_prometheus_scrapes_the_broker_with_its_plugin_enabled(
    services: dict[str, dict[str, Any]],
) -> None:
    jobs = {job["job_name"]: job for job in monitoring_file("prometheus.yml")["scrape_configs"]}
    assert jobs["rabbitmq"]["static_configs"] == [{"targets": ["rabbitmq:15692"]}]
    plugins_file = bind_mounts(services["rabbitmq"])["/etc/rabbitmq/enabled_plugins"]
    plugins = (ROOT / plugins_file).read_text(encoding="utf-8")
    assert "rabbitmq_prometheus" in plugins
    assert "rabbitmq_management" in plugins  # the image's tag promises the management UI
    assert plugins.strip().endswith("].")  # an Erlang term: a list and a full stop


def test_grafana_reads_the_provisioned_datasource_and_dashboards(
    services: dict[str, dict[str, Any]],
) -> None:
    grafana = services["grafana"]
    mounts = bind_mounts(grafana)
    assert mounts["/etc/grafana/provisioning"] == "monitoring/grafana/provisioning"
    (source,) = monitoring_file("grafana/provisioning/datasources/prometheus.yml")["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    assert "127.0.0.1:9090:9090" in services["prometheus"]["ports"]
    (provider,) = monitoring_file("grafana/provisioning/dashboards/pipeline.yml")["providers"]
    folder = provider["options"]["path"]
    assert mounts[folder] == "monitoring/grafana/dashboards"
    home = environment(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(folder + "/")
    assert (ROOT / mounts[folder] / home.removeprefix(folder + "/")).is_file()
    assert set(grafana["depends_on"]) == {"prometheus"}
