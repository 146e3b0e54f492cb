"""A pytest plugin (``-p tests.plugins.interpreted_normaliser``) that makes every test
import the normaliser's Python source, not the mypyc-compiled extensions beside it.

Loaded before any test module, it puts the interpreted modules in ``sys.modules`` under
their own names (the tables first: the normaliser imports them), so
``from common.normalise import normalise`` finds the interpreted one.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

COMMON = Path(__file__).resolve().parents[2] / "common"

for _name in ("dumpshape", "normalise"):
    _spec = importlib.util.spec_from_file_location(f"common.{_name}", COMMON / f"{_name}.py")
    assert _spec is not None
    assert _spec.loader is not None
    _module = importlib.util.module_from_spec(_spec)
    sys.modules[f"common.{_name}"] = _module
    _spec.loader.exec_module(_module)
