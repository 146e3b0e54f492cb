"""Which file a delta should read first: the same delta through the whole pipeline with
the files in the first load's order (labels, artists, masters, releases) against the
largest first (releases, masters, artists, labels), side by side in one run.

A delta waits on reading: the consumers apply a file's changes and deletions while the
extractor reads on, except after the last file. Read last, the releases' tail follows
the reading; read first, it overlaps the reading of the other three.

The stores hold version A (the bench dump, loaded in full with a state folder); each
measured run publishes B as a delta (files given in the order measured) and an
unmeasured delta back to A follows, so every measured run starts from A. Timing as in
:mod:`bench.update_pipeline`. Results: bench/results/delta_order_<percent>pct.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import uuid
from pathlib import Path
from typing import Any

from bench import delta_bench, dump_bench, harness, pipeline
from bench.update_pipeline import versioned

ORDERS = {
    "first_load_order": ("labels", "artists", "masters", "releases"),
    "largest_first": ("releases", "masters", "artists", "labels"),
}


def _files(folder: Path, order: tuple[str, ...]) -> list[Path]:
    by_type = {p.name.split("_", 2)[2].split(".")[0]: p for p in folder.iterdir()}
    return [by_type[t] for t in order]


def measure(percent: float, pairs: int, limit_s: float) -> dict[str, Any]:
    a = dump_bench.dump_folder(percent)
    b = delta_bench.version_b(a)
    logs = pipeline.RESULTS / "logs" / f"delta_order_{percent:g}pct"
    logs.mkdir(parents=True, exist_ok=True)
    prefix = f"bench-order-{uuid.uuid4().hex[:8]}"
    asyncio.run(dump_bench.topology(prefix))
    try:
        with pipeline.fresh_stores() as dsn, tempfile.TemporaryDirectory() as scratch:
            days, state = iter(range(1, 32)), Path(scratch) / "state"

            def publish(files: list[Path], *flags: str) -> dict[str, Any]:
                return pipeline.run_stage(
                    files[0],
                    prefix,
                    dsn,
                    logs,
                    with_extractor=True,
                    limit_s=limit_s,
                    extra=(*map(str, files[1:]), *flags, "--state-dir", str(state)),
                    consumers_first=True,
                )

            publish([versioned(a, next(days), Path(scratch))], "--full")

            def one(name: str) -> dict[str, Any]:
                result = publish(_files(versioned(b, next(days), Path(scratch)), ORDERS[name]))
                publish([versioned(a, next(days), Path(scratch))])  # back to A
                return result

            runs = harness.alternating(pairs, ("first_load_order", "largest_first"), one, "delta")
    finally:
        asyncio.run(dump_bench.topology(prefix, delete=True))
    ratio = statistics.median(
        p["largest_first"]["wall_s"] / p["first_load_order"]["wall_s"] for p in runs
    )
    return {
        "percent": percent,
        "pairs": runs,
        "largest_first_over_first_load_order": round(ratio, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--percent", type=float, default=1.0)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--limit", type=float, default=600, help="seconds a run may take")
    args = parser.parse_args()
    report = measure(args.percent, args.pairs, args.limit)
    out = pipeline.RESULTS / f"delta_order_{args.percent:g}pct.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    ratio = report["largest_first_over_first_load_order"]
    print(f"largest file first / first-load order, delta wall: {ratio}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
