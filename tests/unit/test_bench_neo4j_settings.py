"""The Neo4j side-by-side bench: how a variant's conf is made, and which processes it
meters as the server."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bench import graph_cost, neo4j_settings


def test_a_variant_drops_lines_by_prefix_and_appends_its_own(tmp_path: Path) -> None:
    folder = tmp_path / "services" / "neo4j"
    folder.mkdir(parents=True)
    (folder / "neo4j.conf").write_text(
        "a=1\nserver.jvm.additional=-XX:+UseG1GC\nserver.jvm.additional=-Dx=1\nb=2\n"
    )
    text = neo4j_settings.variant_conf(
        tmp_path, ["server.jvm.additional=-XX:+UseG1GC"], ["server.jvm.additional=-Dy=2"]
    )
    assert text == "a=1\nserver.jvm.additional=-Dx=1\nb=2\nserver.jvm.additional=-Dy=2\n"


def test_the_project_side_starts_from_this_checkout() -> None:
    assert neo4j_settings.Server() == neo4j_settings.Server(neo4j_settings.ROOT, None, None)


@contextmanager
def process_with_argument(argument: str) -> Iterator[int]:
    """The pid of a process whose command line ends with ``argument``; it waits on stdin."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()", argument], stdin=subprocess.PIPE
    )
    try:
        yield proc.pid
    finally:
        proc.communicate(timeout=10)


@pytest.fixture(params=["org.neo4j.server.CommunityEntryPoint", "org.neo4j.server.Neo4jCommunity"])
def server_like(request: pytest.FixtureRequest) -> Iterator[int]:
    """A process whose command line names a Neo4j server's main class (5.x, then 2025.x)."""
    with process_with_argument(request.param) as pid:
        yield pid


def test_both_main_classes_are_metered_as_the_server(
    server_like: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NEO4J_HOME", raising=False)
    assert server_like in graph_cost.neo4j_pids()


def test_a_process_that_only_mentions_the_class_is_not_metered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NEO4J_HOME", raising=False)
    with process_with_argument("grep org.neo4j.server.Neo4jCommunity") as pid:
        assert pid not in graph_cost.neo4j_pids()
