"""Issue 22's limits, enforced: modules < 300 lines, classes < 150 (scripts/class_sizes.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "class_sizes.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("class_sizes", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


def test_every_module_is_under_300_lines() -> None:
    sizes = load().sizes()
    modules = [s for s in sizes if s.kind == "module"]
    assert len(modules) > 40  # the packages were found
    over = [(s.path, s.lines) for s in modules if s.lines >= 300]
    assert over == []


def test_every_class_is_under_150_lines() -> None:
    classes = [s for s in load().sizes() if s.kind == "class"]
    assert classes
    over = [(s.path, s.name, s.lines) for s in classes if s.lines >= 150]
    assert over == []
