"""``--help`` and ``--version`` of the three programs: exit 0, list every setting with its
default, and contact no server (the settings point at ports nothing listens on)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from common.cli import package_version
from extractor.settings import ExtractorSettings
from graphinator.settings import GraphinatorSettings
from tableinator.settings import TableinatorSettings

BIN = Path(__file__).resolve().parents[2] / ".venv" / "bin"
PROGRAMS: dict[str, type[BaseSettings]] = {
    "graphinator": GraphinatorSettings,
    "tableinator": TableinatorSettings,
    "extractor": ExtractorSettings,
}
# Were anything contacted, these would make it wait (and the run time out).
UNREACHABLE = {
    "AMQP_URL": "amqp://user:s3cret@127.0.0.1:1/",
    "NEO4J_URI": "bolt://127.0.0.1:1",
    "POSTGRES_PORT": "1",
}


def run(program: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], **UNREACHABLE}
    return subprocess.run(
        [str(BIN / program), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def settings_lines(help_text: str) -> dict[str, str]:
    """The help's settings block: environment variable -> its line."""
    _, _, block = help_text.partition("settings (environment variables):\n")
    return {line.split()[0]: line for line in block.splitlines() if line.strip()}


@pytest.mark.parametrize("program", list(PROGRAMS))
def test_help_lists_every_setting_with_its_default(program: str) -> None:
    done = run(program, "--help")
    assert done.returncode == 0, done.stderr
    lines = settings_lines(done.stdout)
    for name, field in PROGRAMS[program].model_fields.items():
        env = name.upper()
        assert env in lines, f"{env} missing from {program} --help"
        default = field.get_default()
        if default is None:
            assert "default: (unset)" in lines[env]
        elif not isinstance(default, SecretStr):
            assert lines[env].endswith(f"default: {default}"), lines[env]
    assert "s3cret" not in done.stdout + done.stderr
    assert done.stderr == ""


@pytest.mark.parametrize("program", list(PROGRAMS))
def test_version_prints_the_package_version(program: str) -> None:
    done = run(program, "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{program} {package_version()}"


def test_a_secret_default_is_never_printed() -> None:
    done = run("graphinator", "--help")
    password = GraphinatorSettings.model_fields["neo4j_password"].get_default()
    assert password.get_secret_value() not in done.stdout
    assert "amqp://discogs:***@127.0.0.1:5672/" in done.stdout


@pytest.mark.parametrize("program", ["graphinator", "tableinator"])
def test_an_unknown_argument_is_a_usage_error(program: str) -> None:
    done = run(program, "--frobnicate")
    assert done.returncode == 2
    assert "unrecognized arguments: --frobnicate" in done.stderr
