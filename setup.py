"""Compiles the normaliser (common/normalise.py, common/dumpshape.py) and the extractor's
XML-to-raw conversion (extractor/rawshape.py) to C with mypyc.

Everything else about the package is in pyproject.toml. The normaliser is most of a
consumer's CPU, the conversion most of an extractor worker's; compiled, they run faster
(docs/performance.md). Set DISCOGS_PURE_PYTHON=1 to
install without compiling (no C compiler needed): the same source then runs interpreted.
"""

import os

from setuptools import setup

# Compiled together: the normaliser reads the dump-shape tables at C speed.
NORMALISER = ["common/normalise.py", "common/dumpshape.py"]
RAWSHAPE = ["extractor/rawshape.py"]
ext_modules = []
if os.environ.get("DISCOGS_PURE_PYTHON") != "1":
    from mypyc.build import mypycify

    # No config file: the project's mypy settings load plugins absent from the build,
    # whose isolated environment has no orjson either (its calls compile as Python's).
    flags = ["--config-file=", "--ignore-missing-imports"]
    ext_modules = [
        *mypycify([*flags, *NORMALISER], opt_level="3"),
        *mypycify([*flags, *RAWSHAPE], opt_level="3"),
    ]

setup(ext_modules=ext_modules)
