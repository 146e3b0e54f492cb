"""graphinator draining the full queues of the bench dump, today's statements against the
reference's (docs/performance.md, "Graph write cost").

For each pair and each writer, in alternating order: an emptied graph, the extractor
publishes the whole dump of ``bench.dumpgen`` (``--percent``) into fresh queues, then
graphinator (``graphinator``, or ``python -m bench.graph_reference.service`` for the
reference) drains them; the time runs from its start until ``/health`` shows every type's
``extraction_complete`` handled. Reported: seconds, records/s, CPU seconds of graphinator's
processes and of Neo4j (also by Neo4j's threads: queries, JIT, GC), and the ratio new /
reference. One untimed drain of each writer comes first, so that neither pays the server's
warm-up.

    python -m bench.graph_drain [--percent 1] [--pairs 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from bench import dump_bench, graph_cost, harness, stores
from common.records import DataType

RESULTS = Path(__file__).resolve().parent / "results"
PORT = 8093
COMMANDS = {
    "new": [str(harness.BIN / "graphinator")],
    "reference": [sys.executable, "-m", "bench.graph_reference.service"],
}


def _neo4j_cpu() -> float:
    return sum(graph_cost.cpu_seconds(pid) for pid in graph_cost.neo4j_pids())


def _tree_cpu(root: int) -> float:
    family = [p for p in harness.processes() if root in (p.pid, p.ppid)]
    return sum(p.cpu_s for p in family)


def _done(port: int) -> tuple[bool, int]:
    health = harness.health(port)
    if not health:
        return False, 0
    types: dict[str, Any] = health["types"]  # type: ignore[assignment]
    stats = [types[t.value] for t in DataType]
    return all(s["extraction_complete"] for s in stats), sum(
        s["written"] + s["unchanged"] for s in stats
    )


def drain(which: str, prefix: str, limit_s: float) -> dict[str, Any]:
    env = {
        **os.environ,
        "DISCOGS_EXCHANGE_PREFIX": prefix,
        "HEALTH_PORT": str(PORT),
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "WARNING",
    }
    neo4j0, threads0, started = _neo4j_cpu(), graph_cost.neo4j_thread_cpu(), time.monotonic()
    proc = subprocess.Popen(COMMANDS[which], env=env, stdout=subprocess.DEVNULL)
    done, records, cpu = False, 0, 0.0
    try:
        while time.monotonic() - started < limit_s and proc.poll() is None:
            done, records = _done(PORT)
            cpu = _tree_cpu(proc.pid)
            if done:
                break
            time.sleep(0.2)
        seconds = time.monotonic() - started
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    return {
        "complete": done,
        "records": records,
        "seconds": round(seconds, 1),
        "records_per_s": round(records / seconds),
        "graphinator_cpu_s": round(cpu, 1),
        "neo4j_cpu_s": round(_neo4j_cpu() - neo4j0, 1),
        "neo4j_threads_cpu_s": {
            group: round(cpu - threads0[group], 1)
            for group, cpu in graph_cost.neo4j_thread_cpu().items()
        },
    }


def one_run(which: str, dest: Path, limit_s: float) -> dict[str, Any]:
    stores.clear_graph()
    prefix = f"bench-drain-{uuid.uuid4().hex[:8]}"
    asyncio.run(dump_bench.topology(prefix))
    try:
        published = dump_bench.extractor_alone(dest, prefix, None)
        result = drain(which, prefix, limit_s)
    finally:
        asyncio.run(dump_bench.topology(prefix, delete=True))
    result["published"] = published["records"]
    return result


def warm_up(dest: Path, limit_s: float) -> None:
    """An untimed drain by each writer. A server's first drain of a statement set also pays
    the JIT compiling the code Cypher generates for it (20 of 71 CPU-s on a fresh server,
    0.3-1.3 once warm): whichever writer ran first would carry it."""
    for which in COMMANDS:
        one_run(which, dest, limit_s)


# The figures compared between two drains.
KEYS = ("seconds", "neo4j_cpu_s", "graphinator_cpu_s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--percent", type=float, default=1.0)
    parser.add_argument("--pairs", type=int, default=1)
    parser.add_argument("--limit", type=float, default=1800, help="seconds a drain may take")
    parser.add_argument("--out", type=Path, help="results file (default: by percent)")
    parser.add_argument("--new-first", action="store_true", help="start the pairs with today's")
    parser.add_argument(
        "--no-warmup", action="store_true", help="skip the untimed first drain of each writer"
    )
    args = parser.parse_args()
    dest = dump_bench.dump_folder(args.percent)
    if not args.no_warmup:
        warm_up(dest, args.limit)
    names = ("new", "reference") if args.new_first else ("reference", "new")
    pairs = harness.alternating(
        args.pairs, names, lambda which: one_run(which, dest, args.limit), "drain"
    )
    stores.clear_graph()
    ratios = harness.paired_ratios(pairs, "new", "reference", KEYS)
    report = {"percent": args.percent, "pairs": pairs, **ratios}
    out = args.out or RESULTS / f"graph_drain_{args.percent:g}pct.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report["medians"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
