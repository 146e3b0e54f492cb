"""The command line: argument handling, file selection and order, exit codes (no broker)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from common.records import DataType
from common.settings import SettingsError
from extractor.main import main
from extractor.publish import UsageError, collect_dumps
from extractor.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "data" / "samples"
BIN = ROOT / ".venv" / "bin"


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    """``main()`` configures structlog globally; put the defaults back for other tests."""
    yield
    structlog.reset_defaults()


def test_a_folder_is_published_labels_artists_masters_releases() -> None:
    dumps = collect_dumps([SAMPLES])
    assert [d.data_type for d in dumps] == [
        DataType.LABELS,
        DataType.ARTISTS,
        DataType.MASTERS,
        DataType.RELEASES,
    ]


def test_files_are_published_as_given() -> None:
    given = [
        SAMPLES / "discogs_20200806_releases.xml.gz",
        SAMPLES / "discogs_20200806_labels.xml.gz",
    ]
    assert [d.path for d in collect_dumps(given)] == given


def test_folder_skips_other_files(tmp_path: Path) -> None:
    shutil.copy(SAMPLES / "discogs_20200806_artists.xml.gz", tmp_path)
    (tmp_path / "discogs_20200806_CHECKSUM.txt").write_text("x")
    (tmp_path / "discogs_20200806_labels.xml.gz.part").write_bytes(b"x")
    assert [d.data_type for d in collect_dumps([tmp_path])] == [DataType.ARTISTS]


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["discogs_20200806_labels.xml.gz", "discogs_20200901_artists.xml.gz"], "several dump"),
        (["discogs_20200806_labels.xml.gz", "discogs_20200806_labels.xml"], "a second labels"),
        (["labels.xml.gz"], "not a Discogs dump name"),
    ],
)
def test_inconsistent_inputs_are_usage_errors(
    tmp_path: Path, names: list[str], message: str
) -> None:
    for name in names:
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(UsageError, match=message):
        collect_dumps([tmp_path / n for n in names])


def test_missing_path_and_empty_folder_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["publish", str(tmp_path / "nope")]) == 2
    assert main(["publish", str(tmp_path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"extractor: error: {tmp_path / 'nope'}: no such file or folder",
        f"extractor: error: {tmp_path}: no discogs_YYYYMMDD_<type>.xml[.gz] files in it",
    ]


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["publish"],
        ["publish", "x", "--batch-size", "0"],
        ["publish", "x", "--workers", "0"],
        ["publish", "x", "--max-message-bytes", "-1"],
        ["publish", "x", "--single", "--batch-size", "5"],
        ["download"],
    ],
)
def test_usage_errors_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2


def test_bad_setting_exits_2_without_the_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AMQP_URL", "http://user:s3cret@host/")
    assert main(["publish", str(SAMPLES)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("extractor: error: invalid setting: AMQP_URL")
    assert "s3cret" not in err


def test_an_absent_broker_is_waited_for_until_sigterm() -> None:
    """The extractor may start before RabbitMQ: it waits, one line per attempt with the
    redacted URL, and stops at once on SIGTERM."""
    env = {"PATH": os.environ["PATH"], "AMQP_URL": "amqp://user:s3cret@127.0.0.1:1/"}
    env["LOG_FORMAT"] = "json"
    proc = subprocess.Popen(
        [str(BIN / "extractor"), "publish", str(SAMPLES)],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline().decode()
        while "waiting for server" not in first and first:
            assert json.loads(first)["event"] == "broker"  # one line per attempt, no other
            first = proc.stderr.readline().decode()
        line = json.loads(first)
        assert line["server"] == "rabbitmq"
        assert "amqp://user:***@127.0.0.1:1/" in line["error"]
        assert line["retry_in_s"] > 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 130
        rest = proc.stderr.read().decode()
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()  # type: ignore[union-attr]
    assert "s3cret" not in first + rest
    *logged, last = rest.splitlines()
    assert all(json.loads(text) for text in logged)
    assert last == "extractor: error: interrupted"  # the exit status's one line


def test_a_message_cap_above_the_consumers_limit_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AMQP_MAX_MESSAGE_BYTES", "10000000")
    assert main(["publish", str(SAMPLES), "--max-message-bytes", "12000000"]) == 2
    monkeypatch.setenv("EXTRACTOR_MAX_MESSAGE_BYTES", "11000000")
    assert main(["publish", str(SAMPLES)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (
        "extractor: error: --max-message-bytes 12000000 is above AMQP_MAX_MESSAGE_BYTES "
        "(10000000), the largest message the consumers accept"
    )
    assert err[1].startswith("extractor: error: invalid setting: EXTRACTOR_MAX_MESSAGE_BYTES")


def test_extractor_settings_defaults_and_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    s = load_settings()
    assert s.extractor_max_message_bytes == 8 * 1024 * 1024
    assert s.amqp_max_message_bytes == 16 * 1024 * 1024
    assert s.workers() == (os.cpu_count() or 1)
    monkeypatch.setenv("EXTRACTOR_WORKERS", "3")
    assert load_settings().workers() == 3
    monkeypatch.setenv("EXTRACTOR_WORKERS", "0")
    with pytest.raises(SettingsError, match="EXTRACTOR_WORKERS"):
        load_settings()
