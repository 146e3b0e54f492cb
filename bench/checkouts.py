"""The extractor alone in two checkouts of the project, side by side in one run: B of the
bench dump published as a delta over A's manifests (or in full), alternating which
checkout goes first, each pair measured as :mod:`bench.delta_bench` measures a run.

Each checkout runs from its own virtual environment (``make install`` in it), and its
own code writes A's manifests, so two checkouts that keep different digests are each
compared with themselves. The ratio new / old of the wall time and of the extractor's
CPU, median over the pairs, is what an optimisation must show (at least 5 %).

    python -m bench.checkouts --old ../main --new . --label cutting --pairs 6

Results: bench/results/checkouts_<label>.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import delta_bench, dump_bench, harness

ROOT = Path(__file__).resolve().parents[1]
_MANIFESTS = (
    "import sys; from pathlib import Path; from bench.manifest_cost import write_manifests; "
    "write_manifests(Path(sys.argv[1]), Path(sys.argv[2]))"
)


def _manifests(checkout: Path, dump: Path, state: Path) -> None:
    python = checkout / ".venv" / "bin" / "python"
    subprocess.run([python, "-c", _MANIFESTS, dump, state], cwd=checkout, check=True)


def measure(
    checkouts: dict[str, Path], percent: float, pairs: int, *, full: bool
) -> list[dict[str, Any]]:
    a = dump_bench.dump_folder(percent)
    b = delta_bench.version_b(a)
    with tempfile.TemporaryDirectory(prefix="bench-checkouts-") as scratch:
        states = {name: Path(scratch) / f"a-{name}" for name in checkouts}
        for name, checkout in checkouts.items():
            _manifests(checkout, a, states[name])

        def one(name: str) -> dict[str, Any]:
            extra: list[str] = []
            if not full:
                state = Path(tempfile.mkdtemp(dir=scratch))
                shutil.copytree(states[name], state, dirs_exist_ok=True)
                extra = ["--state-dir", str(state)]
            bin_dir = checkouts[name] / ".venv" / "bin"
            return delta_bench.publish(b, None, extra, bin_dir)

        return harness.alternating(pairs, ("old", "new"), one, "full" if full else "delta")


def ratios(runs: list[dict[str, Any]]) -> dict[str, float]:
    def median(key: str) -> float:
        return round(statistics.median(p["new"][key] / p["old"][key] for p in runs), 3)

    return {"wall": median("wall_s"), "extractor_cpu": median("extractor_cpu_s")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", type=Path, required=True, help="the checkout compared against")
    parser.add_argument("--new", type=Path, required=True, help="the checkout with the change")
    parser.add_argument("--label", required=True, help="names the results file")
    parser.add_argument("--percent", type=float, default=1.0)
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--full", action="store_true", help="publish B in full, not as a delta")
    args = parser.parse_args()
    checkouts = {"old": args.old.resolve(), "new": args.new.resolve()}
    runs = measure(checkouts, args.percent, args.pairs, full=args.full)
    report = {
        "checkouts": {k: str(v) for k, v in checkouts.items()},
        "percent": args.percent,
        "mode": "full" if args.full else "delta",
        "pairs": runs,
        "median_new_over_old": ratios(runs),
    }
    out = ROOT / "bench" / "results" / f"checkouts_{args.label}.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    sys.stdout.write(json.dumps(report["median_new_over_old"]) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
