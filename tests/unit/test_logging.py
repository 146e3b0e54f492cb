"""Log lines: one JSON object per line for structlog and library messages alike, plain
values (no Python reprs), no structlog internals; and the services' first lines."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from common.logging import configure_logging
from common.records import DataType

BIN = Path(__file__).resolve().parents[2] / ".venv" / "bin"


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    yield
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()


def lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_structlog_and_library_lines_are_the_same_json(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json", cache=False)
    structlog.get_logger("x").info(
        "starting", types=frozenset({DataType.RELEASES, DataType.ARTISTS}), kind=DataType.LABELS
    )
    logging.getLogger("aio_pika.robust_connection").warning("reconnecting: %s", "boom")
    first, second = lines(capsys.readouterr().out)
    assert first["event"] == "starting"
    assert first["types"] == ["artists", "releases"]
    assert first["kind"] == "labels"
    assert second["event"] == "reconnecting: boom"
    assert second["level"] == "warning"
    assert second["logger"] == "aio_pika.robust_connection"
    assert set(first) >= {"timestamp", "level"}
    assert set(second) >= {"timestamp", "level"}
    for line in (first, second):
        assert not any(key.startswith("_") for key in line), line


def test_the_extractor_logs_json_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json", stream="stderr", cache=False)
    structlog.get_logger("extractor").info("broker", prefix="discogs")
    logging.getLogger("aio_pika").error("lost")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert [line["event"] for line in lines(captured.err)] == ["broker", "lost"]


@pytest.mark.parametrize("service", ["graphinator", "tableinator"])
def test_a_service_waiting_for_its_server_logs_json_and_stops_on_sigterm(service: str) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "LOG_FORMAT": "json",
        "AMQP_URL": "amqp://u:s3cret@127.0.0.1:1/",
        "NEO4J_URI": "bolt://127.0.0.1:1",
        "POSTGRES_PORT": "1",
        "HEALTH_PORT": "0",
    }
    with subprocess.Popen(
        [str(BIN / service)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    ) as proc:
        assert proc.stdout is not None
        seen: list[dict[str, Any]] = []
        while not any(e["event"] == "waiting for server" for e in seen):
            raw = proc.stdout.readline()
            assert raw, f"{service} exited: {seen}"
            seen.append(json.loads(raw))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        seen.extend(lines(proc.stdout.read().decode()))
    starting = next(e for e in seen if e["event"] == "starting")
    assert all(isinstance(t, str) for t in starting["serial_types"])
    assert starting["version"]
    waiting = next(e for e in seen if e["event"] == "waiting for server")
    assert waiting["attempt"] == 1
    assert waiting["retry_in_s"] > 0
    assert seen[-1]["event"] == "stopped waiting for server"
    for line in seen:
        assert "s3cret" not in json.dumps(line)
        assert not any(key.startswith("_") for key in line), line
