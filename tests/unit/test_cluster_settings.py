"""Connection settings for clusters and TLS (no servers needed)."""

from __future__ import annotations

import pytest

from common.settings import SettingsError, load
from graphinator.main import seed_resolver
from graphinator.settings import GraphinatorSettings
from tableinator.settings import TableinatorSettings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NEO4J_URI", "AMQP_URL", "POSTGRES_DSN", "POSTGRES_SSLMODE"):
        monkeypatch.delenv(name, raising=False)


def test_a_routing_uri_with_several_hosts_seeds_the_driver(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NEO4J_URI", "neo4j+s://a.example:7687, b.example:7688,c.example")
    s = load(GraphinatorSettings)
    assert s.neo4j_seed_uri() == "neo4j+s://a.example:7687"
    assert s.neo4j_seed_hosts() == [("a.example", 7687), ("b.example", 7688), ("c.example", 7687)]
    resolve = seed_resolver(s.neo4j_seed_hosts())
    assert resolve is not None
    assert [tuple(a) for a in resolve(s.neo4j_seed_hosts()[0])] == s.neo4j_seed_hosts()  # type: ignore[arg-type]


def test_one_host_needs_noseed_resolver() -> None:
    s = GraphinatorSettings()
    assert s.neo4j_seed_uri() == "bolt://127.0.0.1:7687"
    assert seed_resolver(s.neo4j_seed_hosts()) is None


def test_ipv6_seed_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEO4J_URI", "neo4j://[::1]:7687,[::2]")
    assert load(GraphinatorSettings).neo4j_seed_hosts() == [("::1", 7687), ("::2", 7687)]


@pytest.mark.parametrize("uri", ["bolt://a:7687,b:7687", "neo4j://a,,b"])
def test_bad_host_lists_are_refused(monkeypatch: pytest.MonkeyPatch, uri: str) -> None:
    monkeypatch.setenv("NEO4J_URI", uri)
    with pytest.raises(SettingsError, match="NEO4J_URI"):
        load(GraphinatorSettings)


@pytest.mark.parametrize(
    "uri", ["bolt+s://db.example:7687", "neo4j+s://db.example", "neo4j+ssc://db.example"]
)
def test_tls_bolt_schemes_are_accepted(monkeypatch: pytest.MonkeyPatch, uri: str) -> None:
    monkeypatch.setenv("NEO4J_URI", uri)
    assert load(GraphinatorSettings).neo4j_uri == uri


def test_an_amqp_cluster_is_a_url_list_and_amqps_is_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMQP_URL", "amqps://u:p@r1.example:5671/,amqps://u:p@r2.example:5671/")
    s = load(GraphinatorSettings)
    assert s.amqp_urls() == ["amqps://u:p@r1.example:5671/", "amqps://u:p@r2.example:5671/"]


def test_a_multi_host_postgres_dsn_passes_through_to_libpq(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dsn = (
        "postgresql://u:p@pg1.example:5432,pg2.example:5432/discogs"
        "?target_session_attrs=read-write&sslmode=verify-full"
    )
    monkeypatch.setenv("POSTGRES_DSN", dsn)
    assert load(TableinatorSettings).conninfo() == dsn


def test_postgres_sslmode_reaches_the_connection_string(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTGRES_SSLMODE", "require")
    assert "sslmode=require" in load(TableinatorSettings).conninfo()
