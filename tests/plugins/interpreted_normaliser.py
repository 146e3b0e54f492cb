"""A pytest plugin (``-p tests.plugins.interpreted_normaliser``) that makes every test
import the normaliser's Python source, not the mypyc-compiled extension beside it.

Loaded before any test module, it puts the interpreted module in ``sys.modules`` under
its own name, so ``from common.normalise import normalise`` finds that one.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[2] / "common" / "normalise.py"

_spec = importlib.util.spec_from_file_location("common.normalise", SOURCE)
assert _spec is not None
assert _spec.loader is not None
_module = importlib.util.module_from_spec(_spec)
sys.modules["common.normalise"] = _module
_spec.loader.exec_module(_module)
