"""The compiled modules' build (the normaliser, the extractor's XML-to-raw conversion):
compiled with mypyc on install and current; the normaliser's interpreted source equal in
behaviour (it runs wherever the project is installed without a compiler).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import common.dumpshape
import common.normalise
import extractor.rawshape

ROOT = Path(__file__).resolve().parents[2]
MODULES = [common.normalise, common.dumpshape, extractor.rawshape]
COMPILED = not common.normalise.__file__.endswith(".py")


@pytest.mark.skipif(
    os.environ.get("DISCOGS_PURE_PYTHON") == "1", reason="installed without compiling"
)
@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_normaliser_is_compiled(module: ModuleType) -> None:
    assert not str(module.__file__).endswith(".py"), f"{module.__file__}: run `make install`"


@pytest.mark.skipif(not COMPILED, reason="the normaliser is not compiled here")
@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_compiled_normaliser_is_not_older_than_its_source(module: ModuleType) -> None:
    # An extension module shadows its source: a stale one would hide every edit.
    source = ROOT / f"{module.__name__.replace('.', '/')}.py"
    built = Path(str(module.__file__)).stat().st_mtime
    assert built >= source.stat().st_mtime, f"{source.name} changed: run `make install`"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_interpreted_source_passes_the_normaliser_tests() -> None:
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "tests.plugins.interpreted_normaliser",
        "tests/unit/test_records.py",
        "tests/unit/test_messages.py",
    ]
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=280, check=False
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout
