"""Lines per module and per class in the runtime packages, against issue 22's limits.

``python scripts/class_sizes.py`` lists every module and class over its limit (exit 1 if
any) and, with ``--all``, every one with its size. tests/unit/test_sizes.py runs the same
check in CI.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("common", "graphinator", "tableinator", "extractor")
MODULE_LIMIT = 300  # lines, exclusive
CLASS_LIMIT = 150


@dataclass(frozen=True)
class Size:
    path: str
    kind: str  # "module" or "class"
    name: str
    lines: int

    @property
    def over(self) -> bool:
        return self.lines >= (MODULE_LIMIT if self.kind == "module" else CLASS_LIMIT)


def sizes(root: Path = ROOT) -> list[Size]:
    """Every module of :data:`PACKAGES` and every class in it (nested ones too)."""
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).glob("*.py")):
            text = path.read_text(encoding="utf-8")
            rel = str(path.relative_to(root))
            found.append(Size(rel, "module", rel, len(text.splitlines())))
            for node in ast.walk(ast.parse(text, filename=rel)):
                if isinstance(node, ast.ClassDef):
                    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                    lines = (node.end_lineno or node.lineno) - first + 1
                    found.append(Size(rel, "class", node.name, lines))
    return found


def main(argv: list[str]) -> int:
    everything = sizes()
    shown = everything if "--all" in argv else [s for s in everything if s.over]
    for size in sorted(shown, key=lambda s: -s.lines):
        mark = "OVER " if size.over else ""
        print(f"{mark}{size.lines:5d}  {size.kind:6s}  {size.path}  {size.name}")
    return 1 if any(s.over for s in everything) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
