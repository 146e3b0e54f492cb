"""graphinator's own CPU per record: two source trees of the service side by side, same
records, alternating order (docs/performance.md, "graphinator's own CPU").

For each pair and type, each tree in turn: an emptied graph, the service started from
that tree (``PYTHONPATH``) on queues of its own and left to settle, then a first load of
``n`` records in batch messages of 500 and, on the same service, next month's dump of
the same records with 1 % changed (:func:`bench.graph_cost.changed_month`). For each
phase: the CPU seconds of the service and its decode workers, and of the Neo4j server,
per record, from /proc, counted from the first publish to the phase's
``extraction_complete``.

    python -m bench.graph_cpu --base /path/to/other/tree [--n 16000] [--pairs 5]

The base tree needs the compiled normaliser beside its sources (copy ``common/*.so``)
or runs it interpreted. The graph is cleared: never run this beside the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import harness, stores
from bench.cases import LOGS, RESULTS, delete_queues
from bench.graph_cost import changed_month, cpu_seconds, neo4j_pids, versioned
from common.records import DataType, Record

HERE = Path(__file__).resolve().parent.parent
LAUNCH = "import sys; from graphinator.main import main; sys.exit(main())"
PORT = 18560  # health port, apart from the other benches'
FIRST, UPDATE = "20260101", "20260201"


def family_cpu(pid: int) -> float:
    """CPU seconds so far of ``pid`` and its children (the decode workers)."""
    return sum(p.cpu_s for p in harness.processes() if pid in (p.pid, p.ppid))


def wait_until(what: str, ready: Callable[[], bool], limit_s: float = 600) -> None:
    deadline = time.monotonic() + limit_s
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not within {limit_s} s")
        time.sleep(0.1)


def settled(pid: int) -> Callable[[], bool]:
    """True once the service's CPU has stopped growing (start-up over)."""
    last = [family_cpu(pid)]

    def check() -> bool:
        time.sleep(0.4)
        now = family_cpu(pid)
        quiet, last[0] = now - last[0] < 0.02, now
        return quiet

    return check


def extraction_done(data_type: DataType, version: str) -> Callable[[], bool]:
    def check() -> bool:
        h = harness.health(PORT)
        return bool(h) and h["types"][data_type.value]["extraction_complete"] == version  # type: ignore[index]

    return check


def one_pass(tree: Path, data_type: DataType, phases: list[tuple[str, list[Record]]]) -> Any:
    """Both phases on one freshly started service of ``tree``; µs a record per phase."""
    stores.clear_graph()
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "PYTHONPATH": str(tree), "DISCOGS_EXCHANGE_PREFIX": prefix}
    env |= {"HEALTH_PORT": str(PORT), "LOG_FORMAT": "json"}
    LOGS.mkdir(parents=True, exist_ok=True)
    with (LOGS / f"graph-cpu-{tree.name}.log").open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", LAUNCH], env=env, cwd=tree, stdout=out)
    out_phases: dict[str, Any] = {}
    try:
        wait_until("consuming", lambda: bool((h := harness.health(PORT)) and h["consuming"]))
        wait_until("start-up", settled(proc.pid))
        for version, records in phases:
            pids = neo4j_pids()
            own0, server0 = family_cpu(proc.pid), sum(map(cpu_seconds, pids))
            wall0 = time.perf_counter()
            harness.prefill_sync(
                prefix, "graphinator", data_type, records, batch=500, version=version
            )
            wait_until("extraction_complete", extraction_done(data_type, version))
            own, server = family_cpu(proc.pid) - own0, sum(map(cpu_seconds, pids)) - server0
            n = len(records)
            out_phases["first" if version == FIRST else "update"] = {
                "graphinator_us": round(own / n * 1e6, 1),
                "server_us": round(server / n * 1e6, 1),
                "seconds": round(time.perf_counter() - wall0, 2),
            }
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        asyncio.run(delete_queues(prefix, "graphinator"))
    return out_phases


def summarise(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for phase in ("first", "update"):
        for key in ("graphinator_us", "server_us"):
            ratios = [round(p["new"][phase][key] / p["base"][phase][key], 3) for p in pairs]
            base = statistics.median(p["base"][phase][key] for p in pairs)
            new = statistics.median(p["new"][phase][key] for p in pairs)
            out[f"{phase}_{key}"] = {
                "base": base,
                "new": new,
                "ratios": ratios,
                "median": statistics.median(ratios),
            }
    return out


def run(base: Path, n: int, pairs: int, types: list[DataType]) -> dict[str, Any]:
    trees = {"base": base, "new": HERE}
    report: dict[str, Any] = {"n": n, "pairs": pairs, "base": str(base), "types": {}}
    for data_type in types:
        records = harness.records_for(data_type, n)
        phases = [
            (FIRST, versioned(records, FIRST)),
            (UPDATE, changed_month(records, UPDATE)),
        ]
        runs = harness.alternating(
            pairs,
            ("base", "new"),
            lambda name: one_pass(trees[name], data_type, phases),  # noqa: B023
            str(data_type),
        )
        report["types"][str(data_type)] = {"pairs": runs, "summary": summarise(runs)}
    stores.clear_graph()
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=Path, required=True)
    parser.add_argument("--n", type=int, default=16000)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--types", default="releases,artists")
    parser.add_argument("--out", type=Path, default=RESULTS / "graph-cpu.json")
    args = parser.parse_args()
    types = [DataType(t) for t in args.types.split(",")]
    report = run(args.base.resolve(), args.n, args.pairs, types)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    for data_type, result in report["types"].items():
        for key, v in result["summary"].items():
            print(f"{data_type:9} {key:20} {v['base']} -> {v['new']}  median {v['median']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
