"""The baseline the original tuning guide started from, built only for the benchmark.

tableinator: prefetch 1, batch 100, flush every 5 s, and a row-by-row ``executemany``
upsert on an autocommit connection. graphinator: prefetch 1 and batch 100 with the
normal writer. Run as ``python -m bench.baseline tableinator|graphinator``; tuning comes
from the same environment variables as the real services (the bench sets them).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

import orjson
from psycopg_pool import AsyncConnectionPool

from common.messages import ExtractionComplete, FileComplete
from common.records import DataType, Record
from common.service import Service, run_main
from common.sink import WriteResult
from graphinator import main as graph_main
from tableinator.settings import TableinatorSettings
from tableinator.writer import PostgresWriter

_UPSERT = {
    t: (
        f"INSERT INTO {t.value} (data_id, hash, data, updated_at) "
        "VALUES (%s, %s, %s::jsonb, now()) ON CONFLICT (data_id) DO UPDATE "
        "SET hash = EXCLUDED.hash, data = EXCLUDED.data, updated_at = now()"
    )
    for t in DataType
}


class RowByRowWriter:
    """executemany upsert in autocommit: every row its own statement and commit."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def write(self, data_type: DataType, records: Sequence[Record]) -> WriteResult:
        rows = [(r.id, r.sha256, orjson.dumps(r.data).decode()) for r in records]
        async with self._pool.connection() as conn:
            await conn.set_autocommit(True)
            async with conn.cursor() as cur:
                await cur.executemany(_UPSERT[data_type], rows)  # type: ignore[arg-type]
        return WriteResult(written=len(rows), unchanged=0)

    async def file_complete(self, message: FileComplete) -> None:
        return None

    async def extraction_complete(
        self, data_type: DataType, message: ExtractionComplete, *, dead_letters: int
    ) -> int:
        return 0


async def _serve_tableinator(settings: TableinatorSettings, stop: asyncio.Event) -> int:
    async with AsyncConnectionPool(
        settings.conninfo(), min_size=1, max_size=settings.pool_size(), open=False
    ) as pool:
        await pool.open(wait=True, timeout=30)
        await PostgresWriter(pool=pool, bulk_load="false").setup()
        writer = RowByRowWriter(pool)
        return await Service(name="tableinator", settings=settings, writer=writer).run(stop)


def main() -> int:
    which = sys.argv[1] if len(sys.argv) > 1 else ""
    if which == "tableinator":
        return run_main("tableinator", TableinatorSettings, _serve_tableinator)
    if which == "graphinator":
        return graph_main.main()
    sys.stderr.write("usage: python -m bench.baseline tableinator|graphinator\n")
    return 2


if __name__ == "__main__":
    sys.exit(main())
