"""``make bench-dump``: a dump shaped like the real one through the whole pipeline.

Writes (or reuses) the dump of ``bench.dumpgen`` at ``--percent`` % of the real dump and
measures, in one run, on fresh queues, an empty graph and a fresh PostgreSQL database:

(a) the extractor alone publishing the dump into the consumers' queues;
(b) graphinator and tableinator together draining those full queues;
(c) the whole pipeline at once, as ``make run`` starts it: extractor and both consumers.

For each: wall time, records/s, CPU seconds of every process (extractor, consumers, the
three servers), peak RSS of ours, and the projection to the full dump, both by the wall
clock and by the CPU every process spent spread over the cores (the time the run needs
when nothing else shares the machine). With ``--growth P`` the same runs at P % too: the
rate of (c) at P % is compared with the 1 % one, and the full dump is projected again from
what the records between the two sizes cost. The consumers' ``Batch processed`` lines of
(c) are kept for ``bench.chart``.
Results: bench/results/pipeline_<percent>pct.json (and .png).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import chart, dump_bench, graph_cost, harness, stores
from common.records import DataType

RESULTS = Path(__file__).resolve().parent / "results"
PORTS = {"graphinator": 8095, "tableinator": 8096}
FULL_RECORDS = dump_bench.FULL_RECORDS
CORES = os.cpu_count() or 1


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            total += graph_cost.cpu_seconds(pid)
        except OSError:
            continue
    return total


def _servers() -> dict[str, list[int]]:
    """The processes of RabbitMQ, PostgreSQL (backends included) and the measured Neo4j."""
    out: dict[str, list[int]] = {"neo4j": graph_cost.neo4j_pids(), "rabbitmq": [], "postgres": []}
    for proc in harness.processes():
        if proc.name == "beam.smp":
            out["rabbitmq"].append(proc.pid)
        elif proc.name == "postgres":
            out["postgres"].append(proc.pid)
    return out


class Meter:
    """CPU seconds of the processes we start and of the servers, and the peak RSS of ours,
    sampled until each process ends: the last sample of a process that exits (a consumer,
    a PostgreSQL backend) is what it spent; of the ``running`` ones, what they spend from
    now on."""

    def __init__(self, running: dict[str, subprocess.Popen[bytes]] | None = None) -> None:
        self.cpu: dict[str, dict[int, float]] = {}
        self.base: dict[int, float] = {}
        self.peak_rss_mb = 0.0
        ours = {name: dump_bench.tree(p.pid) for name, p in (running or {}).items()}
        self._record(_servers() | ours, self.base)

    def _record(self, groups: dict[str, list[int]], into: dict[int, float] | None = None) -> None:
        for name, pids in groups.items():
            seen = into if into is not None else self.cpu.setdefault(name, {})
            for pid in pids:
                try:
                    seen[pid] = graph_cost.cpu_seconds(pid)
                except OSError:
                    continue

    def sample(self, procs: dict[str, subprocess.Popen[bytes]]) -> None:
        ours = {name: dump_bench.tree(p.pid) for name, p in procs.items() if p.poll() is None}
        self.peak_rss_mb = max(
            self.peak_rss_mb, sum(dump_bench.rss_mb(pids) for pids in ours.values())
        )
        self._record(ours | _servers())

    def totals(self) -> dict[str, float]:
        return {
            name: round(sum(cpu - self.base.get(pid, 0.0) for pid, cpu in v.items()), 1)
            for name, v in self.cpu.items()
        }


def _consumer(
    name: str, prefix: str, dsn: str, log: Path, bin_dir: Path
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DISCOGS_EXCHANGE_PREFIX": prefix,
        "HEALTH_PORT": str(PORTS[name]),
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "POSTGRES_DSN": dsn,
    }
    with log.open("wb") as out:
        return subprocess.Popen([str(bin_dir / name)], env=env, stdout=out, stderr=out)


def _done(name: str) -> bool:
    health = harness.health(PORTS[name])
    if not health:
        return False
    types: dict[str, Any] = health["types"]  # type: ignore[assignment]
    return all(types[t.value]["extraction_complete"] for t in DataType)


def _extractor(
    dest: Path, prefix: str, log: Path, extra: tuple[str, ...], bin_dir: Path
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DISCOGS_EXCHANGE_PREFIX": prefix, "LOG_FORMAT": "json"}
    with log.open("wb") as err:
        command = [str(bin_dir / "extractor"), "publish", str(dest), *extra]
        return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=err)


def run_stage(
    dest: Path,
    prefix: str,
    dsn: str,
    logs: Path,
    *,
    with_extractor: bool,
    limit_s: float,
    extra: tuple[str, ...] = (),
    consumers_first: bool = False,
    bin_dir: Path = harness.BIN,
) -> dict[str, Any]:
    """Start the consumers (and the extractor, with ``extra`` arguments) and meter them
    until both have handled every type's ``extraction_complete``. ``consumers_first``:
    the clock and the meter start once both consumers are up and consuming (long-running
    services that a monthly update finds waiting), then the extractor starts. ``bin_dir``:
    the virtual environment the processes run from (another checkout's, to compare code)."""
    procs = {name: _consumer(name, prefix, dsn, logs / f"{name}.log", bin_dir) for name in PORTS}
    settled_s = None
    if consumers_first:
        _until_consuming(procs, logs, limit_s)
        settled_s = settle(procs)
    # Without consumers_first their start-up counts.
    meter = Meter(procs if consumers_first else None)
    load, started = os.getloadavg()[0], time.monotonic()
    if with_extractor:
        procs["extractor"] = _extractor(dest, prefix, logs / "extractor.log", extra, bin_dir)
    try:
        pending = set(PORTS)
        while pending and time.monotonic() - started < limit_s:
            meter.sample(procs)
            pending = {n for n in pending if not _done(n)}
            if any(p.poll() not in (None, 0) for p in procs.values()):
                raise RuntimeError(f"a process failed; see {logs}")
            time.sleep(0.1)
        wall = time.monotonic() - started
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in procs.values():
            proc.wait(timeout=60)
    return {
        "complete": not pending,
        "load_1min_at_start": round(load, 1),
        **({} if settled_s is None else {"settled_after_s": settled_s}),
        "wall_s": round(wall, 1),
        "cpu_s": meter.totals(),
        "peak_rss_mb": round(meter.peak_rss_mb, 1),
    }


def settle(
    procs: dict[str, subprocess.Popen[bytes]],
    *,
    idle_cores: float = 0.1,
    window_s: float = 1.0,
    limit_s: float = 180.0,
) -> float | None:
    """Wait until the servers and ``procs`` together use under ``idle_cores`` over a
    window: each measured run then starts from idle servers, not inside the checkpoint,
    garbage collection or vacuum that the run before it left running. Returns the
    seconds waited, None if they never settled within ``limit_s``."""
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        pids = [pid for group in _servers().values() for pid in group]
        pids += [pid for p in procs.values() for pid in dump_bench.tree(p.pid)]
        before = _cpu(pids)
        time.sleep(window_s)
        if _cpu(pids) - before < idle_cores * window_s:
            return round(time.monotonic() - started, 1)
    return None


def _until_consuming(procs: dict[str, subprocess.Popen[bytes]], logs: Path, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while not all(harness.consuming_at(logs / f"{name}.log") for name in procs):
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs.values()):
            raise RuntimeError(f"the consumers did not start; see {logs}")
        time.sleep(0.1)


def _rates(result: dict[str, Any], records: int) -> dict[str, Any]:
    """Rates and projections: by the wall clock, and by the CPU all processes spent,
    spread over this machine's cores (what the run needs when nothing else runs)."""
    rate = records / result["wall_s"]
    cpu = sum(result["cpu_s"].values())
    return result | {
        "records": records,
        "records_per_s": round(rate),
        "full_dump_projection_h": round(FULL_RECORDS / rate / 3600, 2),
        "cpu_s_total": round(cpu, 1),
        "cpu_us_per_record": round(cpu / records * 1e6),
        "cpu_bound_projection_h": round(cpu / records * FULL_RECORDS / CORES / 3600, 2),
    }


def summarise(report: dict[str, Any]) -> dict[str, Any]:
    """Adds the projections to every stage, and the growth ratios when there are two runs."""
    for run in report["runs"]:
        for stage in ("consumers_drain", "whole_pipeline"):
            run[stage] = _rates(run[stage], run[stage]["records"])
    if len(report["runs"]) == 2:
        small, big = (r["whole_pipeline"] for r in report["runs"])
        report["growth_rate_ratio"] = round(big["records_per_s"] / small["records_per_s"], 3)
        report["growth_cpu_per_record_ratio"] = round(
            big["cpu_us_per_record"] / small["cpu_us_per_record"], 3
        )
        report["marginal"] = _marginal(small, big)
    return report


def _marginal(small: dict[str, Any], big: dict[str, Any]) -> dict[str, float]:
    """The full dump at what the records between the two sizes cost: what is paid once
    (servers warming up, processes starting, the last batch's wait) counts once, not once
    per 1 %, and what the stores' growth adds up to the larger size counts."""
    records = big["records"] - small["records"]
    wall = big["wall_s"] - small["wall_s"]
    cpu = big["cpu_s_total"] - small["cpu_s_total"]
    return {
        "records_per_s": round(records / wall),
        "cpu_us_per_record": round(cpu / records * 1e6),
        "full_dump_projection_h": round(FULL_RECORDS * wall / records / 3600, 2),
        "cpu_bound_projection_h": round(FULL_RECORDS * cpu / records / CORES / 3600, 2),
    }


@contextmanager
def fresh_stores() -> Iterator[str]:
    stores.clear_graph()
    with stores.fresh_database() as dsn:
        yield dsn
    stores.clear_graph()


def measure(percent: float, limit_s: float) -> dict[str, Any]:
    """(a), (b) and (c) at ``percent`` %; the consumers' logs of (c) stay in logs/."""
    dest = dump_bench.dump_folder(percent)
    logs = RESULTS / "logs" / f"pipeline_{percent:g}pct"
    logs.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"percent": percent}
    for stage in ("drain", "pipeline"):
        prefix = f"bench-pipe-{uuid.uuid4().hex[:8]}"
        asyncio.run(dump_bench.topology(prefix))
        try:
            with fresh_stores() as dsn:
                if stage == "drain":
                    alone = dump_bench.extractor_alone(dest, prefix, None)
                    report["extractor_alone"] = alone
                    records = alone["records"]
                run = run_stage(
                    dest, prefix, dsn, logs, with_extractor=stage == "pipeline", limit_s=limit_s
                )
                report["consumers_drain" if stage == "drain" else "whole_pipeline"] = run | {
                    "records": records
                }
        finally:
            asyncio.run(dump_bench.topology(prefix, delete=True))
        print(f"{stage}: {json.dumps(report)}", flush=True)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--percent", type=float, default=1.0)
    parser.add_argument("--growth", type=float, help="also run at this percent and compare")
    parser.add_argument("--limit", type=float, default=7200, help="seconds a stage may take")
    parser.add_argument("--summarise", type=Path, help="only add the projections to a result")
    args = parser.parse_args()
    if args.summarise:
        done = summarise(json.loads(args.summarise.read_text()))
        args.summarise.write_text(json.dumps(done, indent=1) + "\n")
        return 0
    report: dict[str, Any] = {"cpus": CORES, "runs": [measure(args.percent, args.limit)]}
    if args.growth:
        report["runs"].append(measure(args.growth, args.limit))
    report["load_average_at_end"] = os.getloadavg()
    summarise(report)
    out = RESULTS / f"pipeline_{args.percent:g}pct.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    for run in report["runs"]:
        name = f"pipeline_{run['percent']:g}pct"
        chart.draw(RESULTS / "logs" / name, RESULTS / f"{name}.png")
    for run in report["runs"]:
        w = run["whole_pipeline"]
        print(
            f"{run['percent']:g} %: whole pipeline {w['records_per_s']:,} records/s, "
            f"the full dump ({FULL_RECORDS:,} records) in about {w['full_dump_projection_h']} h "
            f"({w['cpu_bound_projection_h']} h by the CPU it used, on {CORES} cores)"
        )
    if "growth_rate_ratio" in report:
        m = report["marginal"]
        print(
            f"growth: rate at {args.growth:g} % / rate at {args.percent:g} % = "
            f"{report['growth_rate_ratio']}; at what the records between them cost, the full "
            f"dump in about {m['full_dump_projection_h']} h ({m['cpu_bound_projection_h']} h "
            "by CPU)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
