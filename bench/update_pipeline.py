"""``make bench-update``: a monthly update through the whole pipeline, as a delta against a
full re-publish of the same version, side by side in one run.

Version A is the bench dump of ``bench.dumpgen`` (``--percent``); version B is derived
from it by ``bench.dumpdelta`` (per type 1 % changed, 0.5 % added, 0.5 % removed). On
fresh queues, an empty graph and a fresh PostgreSQL database, A is loaded in full with a
state folder (which keeps A's manifests). Then, per pair, in alternating order, with
both stores holding A at the start of each measured run:

- full: B published in full, as before deltas existed (the consumers' hash gate skips
  what did not change, the purge removes what B lacks);
- delta: B published as a delta over a copy of A's manifests.

After each measured run A is published in full again, unmeasured, so that the stores hold
A for the next one. A write never replaces a record of a newer dump version, so every run
gets a version of its own, newer than the last: a folder of links to A's or B's files
under another date. Each measured run starts with both consumers up and waiting, as a
monthly update finds them, and lasts from the extractor's start until both have handled
every type's ``extraction_complete``: wall time, CPU seconds of every process (ours and
the three servers), and the projection to the full dump by the wall clock and by the CPU
over the cores.
Results: bench/results/update_<percent>pct.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from bench import delta_bench, dump_bench, dumpgen, pipeline

RESULTS = pipeline.RESULTS


def _measured(result: dict[str, Any], records_read: int) -> dict[str, Any]:
    cpu = sum(result["cpu_s"].values())
    scale = dump_bench.FULL_RECORDS / records_read
    return result | {
        "cpu_s_total": round(cpu, 1),
        "full_dump_projection_min": round(result["wall_s"] * scale / 60, 1),
        "cpu_bound_projection_min": round(cpu * scale / pipeline.CORES / 60, 1),
    }


def _ratios(runs: dict[str, list[dict[str, Any]]]) -> dict[str, float]:
    """Median over pairs of full / delta, by the wall clock and by total CPU."""
    pairs = list(zip(runs["full"], runs["delta"], strict=True))
    return {
        "wall": round(statistics.median(f["wall_s"] / d["wall_s"] for f, d in pairs), 2),
        "cpu": round(statistics.median(f["cpu_s_total"] / d["cpu_s_total"] for f, d in pairs), 2),
    }


def versioned(source: Path, day: int, into: Path) -> Path:
    """A folder of ``source``'s dump files as version 202601<day> (links, not copies)."""
    version = f"202601{day:02d}"
    folder = into / version
    folder.mkdir()
    for path in source.glob("discogs_*_*.xml.gz"):
        kind = path.name.split("_", 2)[2]
        (folder / f"discogs_{version}_{kind}").symlink_to(path.resolve())
    return folder


def measure(percent: float, pairs: int, limit_s: float) -> dict[str, Any]:
    a = dump_bench.dump_folder(percent)
    b = delta_bench.version_b(a)
    records_read = sum(dumpgen.counts(percent).values())
    logs = RESULTS / "logs" / f"update_{percent:g}pct"
    logs.mkdir(parents=True, exist_ok=True)
    prefix = f"bench-update-{uuid.uuid4().hex[:8]}"
    report: dict[str, Any] = {"percent": percent, "records_read": records_read}
    runs: dict[str, list[dict[str, Any]]] = {"full": [], "delta": []}
    asyncio.run(dump_bench.topology(prefix))
    try:
        with pipeline.fresh_stores() as dsn, tempfile.TemporaryDirectory() as scratch:
            days = iter(range(1, 32))

            def publish(source: Path, extra: tuple[str, ...] = ()) -> dict[str, Any]:
                folder = versioned(source, next(days), Path(scratch))
                return pipeline.run_stage(
                    folder,
                    prefix,
                    dsn,
                    logs,
                    with_extractor=True,
                    limit_s=limit_s,
                    extra=extra,
                    consumers_first=True,
                )

            def load_a() -> Path:
                """A in full, keeping its manifests: the stores and the state hold A."""
                state = Path(tempfile.mkdtemp(dir=scratch))
                report.setdefault("loads_of_a", []).append(
                    publish(a, ("--full", "--state-dir", str(state)))
                )
                return state

            state_a = load_a()
            for pair in range(pairs):
                for kind in ("full", "delta") if pair % 2 == 0 else ("delta", "full"):
                    extra: tuple[str, ...] = ()
                    if kind == "delta":
                        extra = ("--state-dir", str(state_a))
                    result = _measured(publish(b, extra), records_read)
                    runs[kind].append(result)
                    print(f"  {kind}: {json.dumps(result)}", flush=True)
                    if len(runs["delta"]) + len(runs["full"]) < 2 * pairs:
                        state_a = load_a()
    finally:
        asyncio.run(dump_bench.topology(prefix, delete=True))
    return report | runs | {"ratio_full_over_delta": _ratios(runs)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--percent", type=float, default=1.0)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--limit", type=float, default=3600, help="seconds a run may take")
    args = parser.parse_args()
    report = measure(args.percent, args.pairs, args.limit)
    report |= {"cpus": pipeline.CORES, "load_average_at_end": os.getloadavg()}
    out = RESULTS / f"update_{args.percent:g}pct.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    ratio = report["ratio_full_over_delta"]
    delta = statistics.median(r["full_dump_projection_min"] for r in report["delta"])
    print(
        f"delta update vs full re-publish, whole pipeline: {ratio['wall']}x by the wall clock, "
        f"{ratio['cpu']}x by CPU; a full dump's monthly update in about {delta} min"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
