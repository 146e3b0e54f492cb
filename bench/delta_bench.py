"""``make bench-delta``: a monthly update sent as a delta against a full re-publish, side by
side in one run, the extractor alone into bound queues.

Version A is the bench dump of ``bench.dumpgen`` (``--percent``); version B is derived
from it by ``bench.dumpdelta`` (per type 1 % changed, 0.5 % added, 0.5 % removed).
First A is published in full with a state folder (which writes A's manifests; measured
too: a full publish that keeps manifests); then, per pair, in alternating order: (a) B in
full without a state folder, as before the delta existed, and (b) B as a delta over a
copy of A's manifests. Each: wall time, CPU seconds of the extractor's processes, peak
RSS, the projection to the full dump (the wall time scales with the records read), and
the manifest's size. Results: bench/results/delta_extractor_<percent>pct.json.

The same update through the whole pipeline, consumers included, is ``bench.update_pipeline``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench import dump_bench, dumpdelta, dumpgen, harness, manifest_cost
from common.records import DataType

ROOT = Path(__file__).resolve().parents[1]
VERSION_B = "20260201"


def version_b(source: Path) -> Path:
    """B of the bench dump in ``source``, in bench/dumps/<source's name>-b (written first
    if it is not there)."""
    dest = ROOT / "bench" / "dumps" / f"{source.name}-b"
    names = [dest / f"discogs_{VERSION_B}_{t.value}.xml.gz" for t in DataType]
    if not all(p.exists() for p in names):
        started = time.monotonic()
        dumpdelta.derive(source, dest, VERSION_B)
        sys.stdout.write(f"version B written to {dest} in {time.monotonic() - started:.0f} s\n")
    return dest


def publish(
    folder: Path, workers: int | None, extra: list[str], bin_dir: Path = harness.BIN
) -> dict[str, Any]:
    """One extractor run into fresh queues of both consumers (deleted afterwards)."""
    prefix = f"bench-delta-{uuid.uuid4().hex[:8]}"
    asyncio.run(dump_bench.topology(prefix))
    try:
        return run_extractor(folder, prefix, workers, extra, bin_dir)
    finally:
        asyncio.run(dump_bench.topology(prefix, delete=True))


def run_extractor(
    folder: Path, prefix: str, workers: int | None, extra: list[str], bin_dir: Path = harness.BIN
) -> dict[str, Any]:
    """``extractor publish folder *extra`` (the one in ``bin_dir``): wall time, CPU seconds
    of its processes, their peak RSS together, RabbitMQ's CPU seconds, and what its
    ``file published`` lines say."""
    env = {**os.environ, "DISCOGS_EXCHANGE_PREFIX": prefix, "LOG_FORMAT": "json"}
    command = [str(bin_dir / "extractor"), "publish", str(folder), *extra]
    if workers:
        command += ["--workers", str(workers)]
    rabbit, before, started = _rabbitmq_cpu(), os.times(), time.monotonic()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=err)
        peak = 0.0
        while proc.poll() is None:
            peak = max(peak, _family_rss_mb(proc.pid))
            time.sleep(0.2)
        wall = time.monotonic() - started
        err.seek(0)
        text = err.read().decode().splitlines()
    after = os.times()
    if proc.returncode != 0:
        raise RuntimeError(f"extractor exited {proc.returncode}: {text[-1:]}")
    lines = [json.loads(x) for x in text if x.startswith("{")]
    files = {e["file"]: e for e in lines if e.get("event") == "file published"}
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    return {
        "records": sum(int(e["records"]) for e in files.values()),
        "wall_s": round(wall, 1),
        "extractor_cpu_s": round(cpu, 1),
        "peak_rss_mb": round(peak, 1),
        "rabbitmq_cpu_s": round(_rabbitmq_cpu() - rabbit, 1),
        "delta_counts": {f: e["counts"] for f, e in files.items() if e.get("counts")},
    }


def _rabbitmq_cpu() -> float:
    return sum(p.cpu_s for p in harness.processes() if p.name == "beam.smp")


def _family_rss_mb(root: int) -> float:
    """The resident memory of ``root`` and its children (the extractor and its workers)."""
    return dump_bench.rss_mb(dump_bench.tree(root))


def measured(result: dict[str, Any], records_read: int, state: Path | None) -> dict[str, Any]:
    scale = dump_bench.FULL_RECORDS / records_read
    out = {
        "records_sent": result["records"],
        "wall_s": result["wall_s"],
        "extractor_cpu_s": result["extractor_cpu_s"],
        "peak_rss_mb": result["peak_rss_mb"],
        "full_dump_projection_min": round(result["wall_s"] * scale / 60, 1),
        "rabbitmq_cpu_s": result["rabbitmq_cpu_s"],
    }
    if result["delta_counts"]:
        out["delta_counts"] = result["delta_counts"]
    if state is not None:
        size = sum(p.stat().st_size for p in state.glob("*.manifest"))
        out["manifest_mb"] = round(size / 1e6, 1)
        out["manifest_full_dump_projection_mb"] = round(size * scale / 1e6)
    return out


def run(
    percent: float, source: Path, pairs: int, workers: int | None, *, delta_only: bool = False
) -> dict[str, Any]:
    """``delta_only``: A's manifests written without publishing A, and no full runs (for
    the delta's memory on a large dump)."""
    b = version_b(source)
    records_read = sum(dumpgen.counts(percent).values())
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="delta-bench-") as scratch:
        state_a = Path(scratch) / "a"
        if delta_only:
            manifest_cost.write_manifests(source, state_a)
        else:
            first = publish(source, workers, ["--state-dir", str(state_a)])
            report["full_a_with_manifest"] = measured(first, records_read, state_a)
        runs: dict[str, list[dict[str, Any]]] = {"full": [], "delta": []}
        for pair in range(pairs):
            kinds = ("full", "delta") if pair % 2 == 0 else ("delta", "full")
            for kind in ("delta",) if delta_only else kinds:
                state = Path(scratch) / f"{kind}{pair}"
                if kind == "full":
                    result = measured(publish(b, workers, []), records_read, None)
                else:
                    shutil.copytree(state_a, state)
                    extra = ["--state-dir", str(state)]
                    result = measured(publish(b, workers, extra), records_read, state)
                runs[kind].append(result)
                sys.stdout.write(f"  {kind}: {json.dumps(result)}\n")
    report.update(runs)
    if delta_only:
        return report
    report["ratio_full_over_delta"] = {
        "wall": round(
            sum(r["wall_s"] for r in runs["full"]) / sum(r["wall_s"] for r in runs["delta"]), 2
        ),
        "extractor_cpu": round(
            sum(r["extractor_cpu_s"] for r in runs["full"])
            / sum(r["extractor_cpu_s"] for r in runs["delta"]),
            2,
        ),
    }
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--percent", type=float, default=1.0)
    parser.add_argument(
        "--dest", type=Path, help="dump A's folder (default: bench/dumps/<percent>)"
    )
    parser.add_argument("--pairs", type=int, default=1)
    parser.add_argument("--workers", type=int, help="extractor --workers (default: its own)")
    parser.add_argument(
        "--delta-only", action="store_true", help="A's manifests without publishing A; no full"
    )
    args = parser.parse_args()
    source = dump_bench.dump_folder(args.percent, args.dest)
    report = {
        "percent": args.percent,
        "counts": {t.value: n for t, n in dumpgen.counts(args.percent).items()},
        "cpus": os.cpu_count(),
        **run(args.percent, source, args.pairs, args.workers, delta_only=args.delta_only),
        "manifest_lookup": manifest_cost.lookup_cost(),
        "load_average_at_end": os.getloadavg(),
    }
    sys.stdout.write(json.dumps(report, indent=2) + "\n")
    name = f"delta_extractor_{args.percent:g}pct{'_delta_only' if args.delta_only else ''}.json"
    out = ROOT / "bench" / "results" / name
    out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
