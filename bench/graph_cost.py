"""Neo4j's cost per record: today's graph writer beside the frozen reference, same records,
same run (docs/performance.md, "Graph write cost").

For each pair, each type (releases, artists) and each writer, in alternating order: an
emptied graph, a first load of ``n`` generated records, then a monthly update of the
same records with 1 % changed. For each: the Neo4j server's CPU µs per record (from
/proc of its process), the writer's CPU µs per record, records/s. The report gives the
per-pair ratios new / reference and their medians.

    python -m bench.graph_cost [--n 8000] [--pairs 5] [--types releases,artists]

``NEO4J_URI`` / ``NEO4J_HOME`` choose the server: with ``NEO4J_HOME`` set only the Neo4j
process started from that home is metered, so a second server beside the tests' own
can be measured alone.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import structlog
from neo4j import AsyncDriver, AsyncGraphDatabase

from bench import harness, stores
from bench.graph_reference.writer import ReferenceWriter
from common.decoding import tune_gc
from common.records import DataType, Record, canonical_json
from graphinator.cypher import SELF_LINKED
from graphinator.writer import Neo4jWriter

RESULTS = Path(__file__).resolve().parent / "results"
BATCH = 500
CONCURRENT = 2
Write = Callable[[DataType, Sequence[Record]], Awaitable[object]]


# The server's main class: 5.x, then 2025.x and later.
ENTRY_POINTS = (b"org.neo4j.server.CommunityEntryPoint", b"org.neo4j.server.Neo4jCommunity")


def neo4j_pids() -> list[int]:
    """The Neo4j server processes to meter (the one of ``NEO4J_HOME`` when it is set)."""
    home = os.environ.get("NEO4J_HOME")
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if home is not None:
            if f"--home-dir={home}".encode() in args:
                pids.append(int(entry.name))
        elif any(a in ENTRY_POINTS for a in args):
            pids.append(int(entry.name))
    return pids


def cpu_seconds(pid: int) -> float:
    return cpu_seconds_of(Path(f"/proc/{pid}/stat"))


# JVM thread names (as /proc shows them, cut at 15 characters) by what the thread does.
THREAD_GROUPS = (
    ("queries", "neo4j.BoltWorke"),
    ("jit", "C1 CompilerThre", "C2 CompilerThre", "Sweeper thread"),
    ("gc", "GC Thread", "G1 "),
)


def neo4j_thread_cpu() -> dict[str, float]:
    """CPU seconds of the Neo4j server's threads, by what they do: running queries (Bolt
    workers), compiling (the JIT), collecting garbage, and the rest."""
    groups = dict.fromkeys([g[0] for g in THREAD_GROUPS] + ["other"], 0.0)
    for pid in neo4j_pids():
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                name = (task / "comm").read_text().strip()
                cpu = cpu_seconds_of(task / "stat")
            except OSError:
                continue  # the thread ended
            group = next((g[0] for g in THREAD_GROUPS if name.startswith(g[1:])), "other")
            groups[group] += cpu
    return groups


def cpu_seconds_of(stat: Path) -> float:
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _load(write: Write, data_type: DataType, records: list[Record]) -> dict[str, float]:
    """Write ``records`` as the service would (batches of 500, 2 at once or 1 if
    self-linked); server and writer CPU µs per record, records/s."""
    slots = asyncio.Semaphore(1 if data_type in SELF_LINKED else CONCURRENT)

    async def one(chunk: Sequence[Record]) -> None:
        async with slots:
            await write(data_type, chunk)

    pids = neo4j_pids()
    server0, own0, wall0 = sum(map(cpu_seconds, pids)), time.process_time(), time.perf_counter()
    chunks = [records[i : i + BATCH] for i in range(0, len(records), BATCH)]
    await asyncio.gather(*(one(chunk) for chunk in chunks))
    wall = time.perf_counter() - wall0
    server, own = sum(map(cpu_seconds, pids)) - server0, time.process_time() - own0
    n = len(records)
    return {
        "server_us": round(server / n * 1e6, 1),
        "writer_us": round(own / n * 1e6, 1),
        "rate": round(n / wall, 1),
    }


def versioned(records: list[Record], version: str) -> list[Record]:
    return [Record(r.id, r.sha256, r.data, version=version) for r in records]


def changed_month(records: list[Record], version: str) -> list[Record]:
    """Next month's dump of the same records: every hundredth one changed."""
    out = []
    for i, r in enumerate(records):
        if i % 100 == 0:
            data = {**r.data}
            key = "title" if "title" in data else "name"
            data[key] = f"{data.get(key, '')} (revised)"
            digest = hashlib.sha256(canonical_json(data)).hexdigest()
            out.append(Record(r.id, digest, data, version=version))
        else:
            out.append(Record(r.id, r.sha256, r.data, version=version))
    return out


def writers(driver: AsyncDriver) -> dict[str, Write]:
    return {"reference": ReferenceWriter(driver).write, "new": Neo4jWriter(driver=driver).write}


async def _one_pass(name: str, data_type: DataType, records: list[Record]) -> dict[str, Any]:
    stores.clear_graph()
    async with AsyncGraphDatabase.driver(stores.NEO4J_URI, auth=stores.NEO4J_AUTH) as driver:
        await Neo4jWriter(driver=driver).setup()
        write = writers(driver)[name]
        first = await _load(write, data_type, versioned(records, "20260101"))
        update = await _load(write, data_type, changed_month(records, "20260201"))
    return {"first": first, "update": update}


def _ratios(pairs: list[dict[str, Any]], phase: str, key: str) -> list[float]:
    return [
        round(p["new"][phase][key] / p["reference"][phase][key], 3)
        for p in pairs
        if p["reference"][phase][key]
    ]


def summarise(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per phase and measure: the ratio new / reference of each pair and their median."""
    out: dict[str, Any] = {}
    for phase in ("first", "update"):
        for key in ("server_us", "writer_us", "rate"):
            ratios = _ratios(pairs, phase, key)
            out[f"{phase}_{key}"] = {
                "ratios": ratios,
                "median": statistics.median(ratios) if ratios else None,
            }
    return out


def run(n: int, pairs: int, types: list[DataType]) -> dict[str, Any]:
    report: dict[str, Any] = {"n": n, "pairs": pairs, "batch": BATCH, "types": {}}
    for data_type in types:
        records = harness.records_for(data_type, n)
        tune_gc()  # as the service does at start
        for name in ("reference", "new"):  # JIT warm-up of the server's plans, not kept
            asyncio.run(_one_pass(name, data_type, records[: n // 4]))
        runs = harness.alternating(
            pairs,
            ("reference", "new"),
            lambda name: asyncio.run(_one_pass(name, data_type, records)),  # noqa: B023
            str(data_type),
        )
        report["types"][str(data_type)] = {"pairs": runs, "summary": summarise(runs)}
    stores.clear_graph()
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=8000)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--types", default="releases,artists")
    parser.add_argument("--out", type=Path, default=RESULTS / "graph-cost.json")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    types = [DataType(t) for t in args.types.split(",")]
    report = run(args.n, args.pairs, types)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    for data_type, result in report["types"].items():
        for key, value in result["summary"].items():
            print(f"{data_type:9} {key:18} median {value['median']}  {value['ratios']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
