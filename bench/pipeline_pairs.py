"""The whole pipeline (``make bench-dump``'s stage c) under two environments, side by side.

``python -m bench.pipeline_pairs --b DECODE_WORKERS=0 --pairs 5`` runs the extractor and
both consumers on the ``--percent`` dump, alternately with the environment as it is (a)
and with ``--b``'s settings added (b), each run on fresh queues and empty stores from
idle servers (after one untimed run of each on the 0.1 % dump), and reports per pair and
as medians the ratios b / a of the wall time and of each process's CPU. It measures a
setting users can change, before a default moves. ``--a-tree DIR`` runs a from another
checkout (its own ``make install``), to measure a change of code the same way.
Results: bench/results/pipeline_pairs_<name>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import dump_bench, harness, pipeline

RESULTS = pipeline.RESULTS


@contextmanager
def environment(settings: dict[str, str]) -> Iterator[None]:
    """``settings`` in this process's environment (which the runs inherit) for a while."""
    before = {k: os.environ.get(k) for k in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def one_run(
    dest: Path, settings: dict[str, str], limit_s: float, bin_dir: Path = harness.BIN
) -> dict[str, Any]:
    prefix = f"bench-pairs-{uuid.uuid4().hex[:8]}"
    logs = RESULTS / "logs" / "pipeline_pairs"
    logs.mkdir(parents=True, exist_ok=True)
    asyncio.run(dump_bench.topology(prefix))
    try:
        with pipeline.fresh_stores() as dsn, environment(settings):
            pipeline.settle({})
            run = pipeline.run_stage(
                dest, prefix, dsn, logs, with_extractor=True, limit_s=limit_s, bin_dir=bin_dir
            )
    finally:
        asyncio.run(dump_bench.topology(prefix, delete=True))
    if not run["complete"]:
        raise RuntimeError(f"a run did not complete within {limit_s} s; see {logs}")
    run["cpu_s_total"] = round(sum(run["cpu_s"].values()), 1)
    return run


def ratios(pairs: list[dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Per pair, b / a of the wall, the total CPU and each process's CPU; their medians."""

    def figures(run: dict[str, Any]) -> dict[str, float]:
        cpu = {f"cpu_s.{name}": seconds for name, seconds in run["cpu_s"].items()}
        return {"wall_s": run["wall_s"], "cpu_s_total": run["cpu_s_total"], **cpu}

    flat = [{which: figures(run) for which, run in pair.items()} for pair in pairs]
    return harness.paired_ratios(flat, "b", "a", flat[0]["a"])


def parse_settings(items: list[str]) -> dict[str, str]:
    pairs = [item.split("=", 1) for item in items]
    if any(len(p) != 2 for p in pairs):
        raise SystemExit("settings are NAME=VALUE")
    return {k: v for k, v in pairs}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--b", nargs="*", default=[], metavar="NAME=VALUE")
    parser.add_argument("--a", nargs="*", default=[], metavar="NAME=VALUE")
    parser.add_argument("--a-tree", type=Path, help="the checkout a runs from (default: this)")
    parser.add_argument("--percent", type=float, default=1.0)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--limit", type=float, default=1800, help="seconds a run may take")
    parser.add_argument("--name", required=True, help="results file: pipeline_pairs_<name>.json")
    args = parser.parse_args()
    dest = dump_bench.dump_folder(args.percent)
    variants = {"a": parse_settings(args.a), "b": parse_settings(args.b)}
    bins = {"a": args.a_tree / ".venv" / "bin" if args.a_tree else harness.BIN, "b": harness.BIN}
    if variants["a"] == variants["b"] and bins["a"] == bins["b"]:
        raise SystemExit("a and b are the same: give --b settings or --a-tree")

    def run(which: str, dump: Path) -> dict[str, Any]:
        return one_run(dump, variants[which], args.limit, bins[which])

    # A server's first load of a statement set pays the JIT compiling what Cypher generates
    # for it (bench.graph_drain): untimed, on the small dump, once with each.
    for which in variants:
        run(which, dump_bench.dump_folder(0.1))
    pairs = harness.alternating(args.pairs, ("a", "b"), lambda which: run(which, dest), "pipeline")
    report = {
        "percent": args.percent,
        "settings": variants,
        "trees": {which: str(path.parent.parent) for which, path in bins.items()},
        "cpus": pipeline.CORES,
        "pairs": pairs,
        **ratios(pairs),
    }
    out = RESULTS / f"pipeline_pairs_{args.name}.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report["medians"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
