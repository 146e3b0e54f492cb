"""Where Neo4j's time goes, statement by statement, for the reference writer and today's
(docs/performance.md, "Graph write cost").

A first load and a 1 %-changed update of ``n`` generated records, one batch at a time,
every statement run through a recording transaction: its server time (the summary's
``result_available_after`` + ``result_consumed_after``) summed per statement. Then the
same load on an emptied graph with every statement under ``PROFILE``: database hits,
page-cache hits and faults summed over the plan, and the largest transaction memory a
statement reported.

    python -m bench.graph_statements [--n 4000] [--type releases]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from types import ModuleType
from typing import Any

import structlog
from neo4j import AsyncGraphDatabase, AsyncManagedTransaction

from bench import graph_cost, harness, stores
from bench.graph_reference import cypher as reference_cypher
from bench.graph_reference import writer as reference_writer
from common.decoding import tune_gc
from common.records import DataType, Record
from graphinator import cypher, rows, writer

PROFILE = "PROFILE "


def statement_names(module: ModuleType) -> dict[str, str]:
    """A readable name for every write statement of a cypher module."""
    names = {q: f"merge {dt}" for dt, q in getattr(module, "MERGE_NODES", {}).items()}
    names |= {q: f"gate {dt}" for dt, q in getattr(module, "GATE", {}).items()}
    names |= {q: f"props {dt}" for dt, q in getattr(module, "NODE_PROPS", {}).items()}
    names |= {q: f"placeholder {label}" for label, q in getattr(module, "PLACEHOLDER", {}).items()}
    names |= {q: f"tag {label}" for label, q in getattr(module, "TAG", {}).items()}
    names[module.ORPHANS] = "orphans"
    for attr, name in (("ORPHANS_LOCK", "orphans lock"), ("RENAME", "rename")):
        if hasattr(module, attr):  # today's: lock the former targets, name the placeholders
            names[getattr(module, attr)] = name
    for dt, plan in module.PLANS.items():
        for i, q in enumerate(plan.owned):
            names[q] = f"remove owned {dt} {i}"
        for kind, q in getattr(plan, "edges", ()):  # the reference's edge statements
            names[q] = f"edges {kind}"
        for label, q in getattr(plan, "links", {}).items():  # today's, by referenced label
            names[q] = f"links {dt} -> {label}"
    return names


def _plan_totals(plan: Any) -> dict[str, int]:
    """dbHits, page-cache hits and faults summed over a profiled plan."""
    args = plan.get("args", {}) if isinstance(plan, dict) else {}
    out = {
        "db_hits": int(plan.get("dbHits", 0)),
        "cache_hits": int(plan.get("pageCacheHits", 0)),
        "cache_faults": int(plan.get("pageCacheMisses", 0)),
        "memory": int(args.get("GlobalMemory", 0) or 0),
    }
    for child in plan.get("children", []):
        for key, value in _plan_totals(child).items():
            out[key] = max(out[key], value) if key == "memory" else out[key] + value
    return out


class _Result:
    def __init__(self, records: list[Any], summary: Any) -> None:
        self._records, self._summary = records, summary

    async def __aiter__(self) -> AsyncIterator[Any]:
        for record in self._records:
            yield record

    async def value(self, key: str) -> list[Any]:
        return [r[key] for r in self._records]

    async def single(self, strict: bool = False) -> Any:
        return self._records[0] if self._records else None

    async def consume(self) -> Any:
        return self._summary


class RecordingTx:
    """Runs each statement to completion and adds its cost to ``stats`` by name."""

    def __init__(self, tx: AsyncManagedTransaction, names: dict[str, str], stats: Any) -> None:
        self._tx, self._names, self._stats, self.profile = tx, names, stats, False

    async def run(self, query: str, **params: Any) -> _Result:
        name = self._names.get(query, query[:60])
        text = f"{PROFILE}{query}" if self.profile else query
        result = await self._tx.run(text, **params)
        records = [r async for r in result]
        summary = await result.consume()
        s = self._stats[name]
        s["calls"] += 1
        s["rows"] += len(params.get("rows", []))
        s["server_ms"] += (summary.result_available_after or 0) + (
            summary.result_consumed_after or 0
        )
        if self.profile and summary.profile:
            for key, value in _plan_totals(summary.profile).items():
                s[key] = max(s[key], value) if key == "memory" else s[key] + value
        return _Result(records, summary)


async def _load(which: str, data_type: DataType, records: list[Record], profile: bool) -> Any:
    stats: Any = defaultdict(lambda: defaultdict(int))
    names = statement_names(reference_cypher if which == "reference" else cypher)
    async with AsyncGraphDatabase.driver(stores.NEO4J_URI, auth=stores.NEO4J_AUTH) as driver:
        await writer.Neo4jWriter(driver=driver).setup()
        for chunk in _chunks(records):

            async def work(tx: AsyncManagedTransaction, chunk: Sequence[Record] = chunk) -> None:
                rec = RecordingTx(tx, names, stats)
                rec.profile = profile
                if which == "reference":
                    await reference_writer.write_batch(rec, data_type, chunk)
                else:
                    node_rows = rows.gate_rows(chunk)
                    await writer.write_batch(rec, data_type, node_rows, chunk)  # type: ignore[arg-type]

            async with driver.session() as session:
                await session.execute_write(work)
    return {name: dict(s) for name, s in stats.items()}


def _chunks(records: list[Record]) -> list[list[Record]]:
    return [records[i : i + graph_cost.BATCH] for i in range(0, len(records), graph_cost.BATCH)]


def measure(which: str, data_type: DataType, n: int) -> dict[str, Any]:
    records = harness.records_for(data_type, n)
    tune_gc()  # as the service does at start
    out = {}
    for profile in (False, True):
        stores.clear_graph()
        first = asyncio.run(
            _load(which, data_type, graph_cost.versioned(records, "20260101"), profile)
        )
        update = asyncio.run(
            _load(which, data_type, graph_cost.changed_month(records, "20260201"), profile)
        )
        out["profiled" if profile else "timed"] = {"first": first, "update": update}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--type", default="releases")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    data_type = DataType(args.type)
    report = {w: measure(w, data_type, args.n) for w in ("reference", "new")}
    stores.clear_graph()
    text = json.dumps({"n": args.n, "type": args.type, **report}, indent=1)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    for which, result in report.items():
        for phase in ("first", "update"):
            print(f"== {which} {phase} (n={args.n})")
            timed, prof = result["timed"][phase], result["profiled"][phase]
            for name, s in sorted(timed.items(), key=lambda kv: -kv[1]["server_ms"]):
                p = prof.get(name, {})
                print(
                    f"  {name:34} calls {s['calls']:4} rows {s['rows']:7} "
                    f"ms {s['server_ms']:6} dbhits {p.get('db_hits', 0):9} "
                    f"pc_hits {p.get('cache_hits', 0):9} faults {p.get('cache_faults', 0):5} "
                    f"mem {p.get('memory', 0)}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
