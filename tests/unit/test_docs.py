"""README.md stays true to the code: the tuning table, the commands it names, its links.

The tuning table lies between ``<!-- tuning:start -->`` and ``<!-- tuning:end -->``; its
first column is the variable, the second who reads it, the third the default.
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
README = ROOT / "README.md"
CLASSES: dict[str, type[BaseSettings]] = {
    "graphinator": GraphinatorSettings,
    "tableinator": TableinatorSettings,
    "extractor": ExtractorSettings,
}
# What the "applies to" column may say, and which programs that means.
AUDIENCES = {
    "all": {"graphinator", "tableinator", "extractor"},
    "consumers": {"graphinator", "tableinator"},
    "graphinator": {"graphinator"},
    "tableinator": {"tableinator"},
    "extractor": {"extractor"},
}
PERF_START, PERF_END = "<!-- perf:start -->", "<!-- perf:end -->"


def readme() -> str:
    return README.read_text(encoding="utf-8")


def between(text: str, start: str, end: str) -> str:
    assert text.count(start) == 1, f"{start} must appear exactly once"
    assert text.count(end) == 1, f"{end} must appear exactly once"
    _, _, rest = text.partition(start)
    body, _, _ = rest.partition(end)
    return body


def tuning_rows() -> dict[str, list[str]]:
    """Variable name -> its row's cells, from the README's tuning table."""
    body = between(readme(), "<!-- tuning:start -->", "<!-- tuning:end -->")
    rows: dict[str, list[str]] = {}
    for line in body.strip().splitlines()[2:]:  # skip the header and the separator
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        match = re.fullmatch(r"`([A-Z0-9_]+)`", cells[0])
        assert match, f"first cell must be one `VARIABLE`: {line!r}"
        name = match.group(1)
        assert name not in rows, f"{name} is in the tuning table twice"
        rows[name] = cells
    return rows


def programs_reading(name: str) -> set[str]:
    return {prog for prog, cls in CLASSES.items() if name.lower() in cls.model_fields}


def default_of(cls: type[BaseSettings], name: str) -> Any:
    value = cls.model_fields[name.lower()].default
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def same_value(literal: str, value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return literal == str(value)
    try:
        return float(literal) == float(value)
    except ValueError:
        return False


def test_every_table_variable_is_a_setting_of_the_programs_it_names() -> None:
    rows = tuning_rows()
    assert rows, "the tuning table is empty"
    for name, cells in rows.items():
        readers = programs_reading(name)
        assert readers, f"{name} is in the README but no settings class reads it"
        audience = cells[1]
        assert audience in AUDIENCES, f"{name}: unknown 'applies to' value {audience!r}"
        assert readers == AUDIENCES[audience], (
            f"{name}: README says {audience!r}, but it is read by {sorted(readers)}"
        )


def test_every_setting_is_in_the_table() -> None:
    documented = set(tuning_rows())
    for prog, cls in CLASSES.items():
        missing = {f.upper() for f in cls.model_fields} - documented
        assert not missing, f"{prog} reads {sorted(missing)}, which the README does not list"


def test_table_defaults_match_the_settings() -> None:
    for name, cells in tuning_rows().items():
        literals = re.findall(r"`([^`]*)`", cells[2])
        for prog in programs_reading(name):
            value = default_of(CLASSES[prog], name)
            if value is None:
                assert not literals, f"{name} has no default, README gives {literals}"
                continue
            assert any(same_value(lit, value) for lit in literals), (
                f"{name}: {prog}'s default is {value!r}, README says {cells[2]!r}"
            )


def test_readme_names_the_test_command() -> None:
    assert "make test" in readme()


def makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([A-Za-z][\w-]*):", text, flags=re.MULTILINE))


def test_make_targets_named_in_readme_exist() -> None:
    named = set(re.findall(r"\bmake ([a-z][\w-]*)", readme()))
    assert {"test", "run", "services"} <= named
    missing = named - makefile_targets()
    assert not missing, f"README names make targets the Makefile lacks: {sorted(missing)}"


def local_links() -> set[str]:
    targets = re.findall(r"\]\(([^)\s]+)\)", readme())
    return {
        t.split("#", 1)[0]
        for t in targets
        if not t.startswith(("http://", "https://", "mailto:", "#"))
    }


def test_local_links_point_at_files() -> None:
    links = local_links()
    assert "docs/graph-model.md" in links
    missing = sorted(link for link in links if not (ROOT / link).exists())
    assert not missing, f"README links {missing}, which do not exist"


@pytest.mark.parametrize("doc", sorted(p.name for p in (ROOT / "docs").glob("*.md")))
def test_every_doc_is_linked_from_the_readme(doc: str) -> None:
    assert f"docs/{doc}" in local_links()


def test_performance_table_is_copied_from_docs() -> None:
    """The README's performance block equals docs/performance.md's."""
    ours = between(readme(), PERF_START, PERF_END)
    text = (ROOT / "docs" / "performance.md").read_text(encoding="utf-8")
    assert ours.strip() == between(text, PERF_START, PERF_END).strip(), (
        "README's performance table differs from docs/performance.md: copy it over"
    )


# --------------------------------------------------------------------------------------
# The first screen, prerequisites, running a load, and the claims the issue found untrue
# --------------------------------------------------------------------------------------

COMPOSE = ROOT / "docker-compose.yml"
NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5}


def compose_services() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    services: dict[str, Any] = loaded["services"]
    return services


def test_the_first_20_lines_say_what_it_is_and_give_the_two_commands() -> None:
    top = "\n".join(readme().splitlines()[:20])
    assert "Neo4j" in top
    assert "PostgreSQL" in top
    assert "Discogs" in top
    assert re.search(r"^docker compose up\b", top, flags=re.MULTILINE)
    assert re.search(r"^DUMP_DIR=\S+ docker compose up\b", top, flags=re.MULTILINE)
    assert "`make run`" in top


def test_prerequisites_name_compose_v2_python_memory_and_disk() -> None:
    section = between(readme(), "## Prerequisites", "## How it works")
    assert "Compose v2" in section
    assert "`docker compose`" in section
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    minimum = re.search(r'requires-python = ">=(\d+\.\d+)"', pyproject)
    assert minimum is not None
    assert f"Python {minimum.group(1)}" in section
    assert re.search(r"\d+ GB of RAM", section)
    assert "Disk" in section


def test_running_a_load_says_when_it_is_done_how_to_stop_and_how_to_open_each_store() -> None:
    section = between(readme(), "## Running a load", "## Tests")
    for needed in ("update summary", "docker compose stop", "docker compose down", "psql"):
        assert needed in section, needed
    assert "cypher-shell" in section
    assert "http://127.0.0.1:7474" in section


def test_docker_compose_commands_name_services_that_exist() -> None:
    text = readme()
    named = set(re.findall(r"docker compose (?:exec|ps -a) ([a-z0-9]+)", text))
    for group in re.findall(r"docker compose logs ((?:[a-z0-9]+ )+)", text):
        named.update(group.split())
    assert {"postgres", "neo4j", "extractor", "graphinator", "tableinator"} <= named
    services = compose_services()
    for service in named:
        assert service in services, f"README runs `docker compose … {service}`"


def test_credentials_in_the_commands_are_those_of_the_compose_file() -> None:
    services = compose_services()
    pg = services["postgres"]["environment"]
    user, password = services["neo4j"]["environment"]["NEO4J_AUTH"].split("/")
    text = readme()
    assert f"psql -U {pg['POSTGRES_USER']} {pg['POSTGRES_DB']}" in text
    assert f"cypher-shell -u {user} -p {password}" in text
    assert f"{pg['POSTGRES_USER']}:{pg['POSTGRES_PASSWORD']}@127.0.0.1:5432" in text


def test_the_compose_variables_said_fixed_are_exactly_the_fixed_ones() -> None:
    said = set(
        re.findall(
            r"`([A-Z0-9_]+)`",
            between(readme(), "<!-- compose-fixed -->", "<!-- /compose-fixed -->"),
        )
    )
    services = compose_services()
    fixed = set()
    for name in ("graphinator", "tableinator", "extractor"):
        for key, value in (services[name].get("environment") or {}).items():
            if key == "<<":
                continue
            if not str(value).startswith("${"):
                fixed.add(key)
    anchors = {"AMQP_URL"}  # set in the shared x-amqp block, fixed there
    assert said == fixed | anchors


def test_the_pool_size_in_the_readme_is_the_code_s() -> None:
    row = tuning_rows()["POSTGRES_MAX_CONCURRENT_FLUSHES"]
    match = re.search(r"this many plus (\w+)", row[3])
    assert match is not None
    settings = TableinatorSettings()
    extra = settings.pool_size() - settings.postgres_max_concurrent_flushes
    assert NUMBER_WORDS[match.group(1)] == extra


def test_the_extractor_reads_amqp_url_file_as_the_readme_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "The extractor reads `AMQP_URL_FILE`" in readme()
    secret = tmp_path / "amqp_url"
    secret.write_text("amqp://u:p@broker:5672/\n")
    monkeypatch.delenv("AMQP_URL", raising=False)
    monkeypatch.setenv("AMQP_URL_FILE", str(secret))
    assert ExtractorSettings().amqp_urls() == ["amqp://u:p@broker:5672/"]


def test_the_download_folder_is_ignored_by_git_and_docker() -> None:
    folders = set(re.findall(r"--dest (\w+)/", readme()))
    assert folders
    gitignore = (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    dockerignore = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    for folder in folders:
        assert {folder, f"{folder}/"} & set(gitignore), f".gitignore lacks {folder}/"
        assert {folder, f"{folder}/"} & set(dockerignore), f".dockerignore lacks {folder}"


def test_the_samples_readme_does_not_ask_to_copy_them() -> None:
    text = (ROOT / "data" / "samples" / "README.md").read_text(encoding="utf-8")
    assert "copy them into the project" not in text


def test_wire_format_gives_the_code_s_message_size_default() -> None:
    text = (ROOT / "docs" / "wire-format.md").read_text(encoding="utf-8")
    match = re.search(r"\((\d+) MiB by default\)", text)
    assert match is not None
    default = default_of(GraphinatorSettings, "AMQP_MAX_MESSAGE_BYTES")
    assert int(match.group(1)) * 1024 * 1024 == default


def test_log_events_the_readme_names_are_logged_by_the_code() -> None:
    code = "\n".join(
        p.read_text(encoding="utf-8")
        for folder in ("common", "graphinator", "tableinator", "extractor")
        for p in (ROOT / folder).glob("*.py")
    )
    for event in ("waiting for server", "update summary", "file complete", "Batch processed"):
        assert event in readme()
        assert f'"{event}"' in code, event
