"""graphinator with the reference batch write (main at 275787c): the same service, settings
and runtime, only the statements frozen. Run by :mod:`bench.graph_drain`.

    python -m bench.graph_reference.service
"""

from __future__ import annotations

import asyncio
import sys

from bench.graph_reference.writer import ReferenceNeo4jWriter
from common.service import run_main
from graphinator import main as graphinator
from graphinator.settings import GraphinatorSettings


async def _serve(settings: GraphinatorSettings, stop: asyncio.Event) -> int:
    return await graphinator.serve(settings, stop, make_writer=ReferenceNeo4jWriter)


def main() -> int:
    return run_main("graphinator", GraphinatorSettings, _serve, description="reference")


if __name__ == "__main__":
    sys.exit(main())
