"""Renders bench/results/reliability.json (written by `make test-faults`) into the results
table of docs/reliability.md, between the ``<!-- results -->`` markers."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "reliability.json"
DOC = ROOT / "docs" / "reliability.md"
BEGIN, END = "<!-- results -->", "<!-- /results -->"
COLUMNS = (
    "case",
    "store",
    "published",
    "stored",
    "lost",
    "duplicated",
    "dead_lettered",
    "seconds",
    "note",
)
HEADERS = (
    "Case",
    "Store",
    "Published",
    "Stored",
    "Lost",
    "Duplicated",
    "Dead-lettered",
    "Case s",
    "Notes",
)


def render(doc: dict[str, object]) -> str:
    rows = doc["rows"]
    assert isinstance(rows, list)
    lines = [
        f"Latest run: {doc['generated']}, {doc['machine']}, whole suite"  # type: ignore[index]
        f" {doc['suite_seconds']} s.",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "|".join("---" for _ in HEADERS) + "|",
    ]
    for row in rows:
        cells = [str(row[c]).replace("|", "\\|") for c in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    doc = json.loads(RESULTS.read_text())
    text = DOC.read_text()
    if BEGIN not in text or END not in text:
        print(f"{DOC}: no {BEGIN} ... {END} markers", file=sys.stderr)
        return 1
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    DOC.write_text(f"{head}{BEGIN}\n{render(doc)}\n{END}{tail}")
    print(f"{DOC.relative_to(ROOT)}: {len(doc['rows'])} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
