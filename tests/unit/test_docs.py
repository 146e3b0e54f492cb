"""README.md stays true to the code: the tuning table, the commands it names, its links.

The tuning table lies between ``<!-- tuning:start -->`` and ``<!-- tuning:end -->``; its
first column is the variable, the second who reads it, the third the default.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
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
# Docs being written in parallel; a link to one of them is accepted until it exists.
PENDING_DOCS = {"docs/performance.md", "docs/reliability.md", "docs/scaling.md"}
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
    for link in sorted(links):
        if (ROOT / link).exists():
            continue
        assert link in PENDING_DOCS, f"README links {link}, which does not exist"


@pytest.mark.parametrize("doc", sorted(PENDING_DOCS))
def test_pending_docs_are_linked(doc: str) -> None:
    assert doc in local_links()


def test_performance_table_is_copied_from_docs() -> None:
    """The README's performance block equals docs/performance.md's, once that has one."""
    ours = between(readme(), PERF_START, PERF_END)
    perf = ROOT / "docs" / "performance.md"
    if perf.exists() and PERF_START in (text := perf.read_text(encoding="utf-8")):
        assert ours.strip() == between(text, PERF_START, PERF_END).strip(), (
            "README's performance table differs from docs/performance.md: copy it over"
        )
