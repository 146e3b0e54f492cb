"""Renders bench/results/latest.json as the markdown tables of docs/performance.md.

Usage: python -m bench.report  (rewrites the part of docs/performance.md and README.md
between the markers ``<!-- perf:start -->`` and ``<!-- perf:end -->``).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LATEST = ROOT / "bench" / "results" / "latest.json"
TARGETS = ROOT / "docs" / "performance.md", ROOT / "README.md"
_MARKED = re.compile(r"(<!-- perf:start -->\n).*?(<!-- perf:end -->)", re.S)


def _r(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def tables(report: dict[str, Any]) -> str:
    rows = [
        "| consumer | type | N | ceiling rec/s: before batch / between / after single | "
        "ours, batch msgs (steady) | ours, single msgs | "
        "baseline | batch / ceiling | single / ceiling | batch / baseline | "
        "peak RSS MB, consumer + decode worker | "
        "batch p50 / p99 ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        b, s, base = r["batch"], r["single"], r["baseline"]
        rows.append(
            f"| {r['consumer']} | {r['data_type']} | {r['n']:,} | {_ceiling(r)} | "
            f"{_r(b['rate'])} ({_r(b.get('steady_rate'))}) | {_r(s['rate'])} | "
            f"{_r(base['rate'], 1)} | "
            f"{_r(r['batch_vs_ceiling'], 2)} | {_r(r['single_vs_ceiling'], 2)} | "
            f"{_r(r['batch_vs_baseline'])}x | "
            f"{_r(b['peak_rss_mb'])} + {_r(b.get('workers_rss_mb'))} | "
            f"{_r(b['batch_p50_ms'])} / {_r(b['batch_p99_ms'])} |"
        )
    rows += _repeat_rows(report["results"])
    if any("bounds" in r for r in report["results"]):
        rows += ["", *_bound_rows(report["results"])]
    if report.get("growth"):
        rows += [
            "",
            "| consumer | n (releases) | rec/s, first batch to n | 2n to 4n (ratio) | "
            "12n to 16n (ratio) |",
            "|---|---:|---:|---:|---:|",
        ]
        for g in report["growth"]:
            rows.append(
                f"| {g['consumer']} | {g.get('n', 0):,} | {_r(g['rate_n'])} | "
                f"{_r(g['rate_4n'])} ({g['ratio_4n']}) | {_r(g['rate_16n'])} ({g['ratio_16n']}) |"
            )
    if report.get("updates"):
        rows += [
            "",
            "| consumer | first load s | same data again s | 1% changed/added/removed s |",
            "|---|---:|---:|---:|",
        ]
        for u in report["updates"]:
            rows.append(f"| {u['consumer']} | {u['first_s']} | {u['again_s']} | {u['delta_s']} |")
    if report.get("replicas"):
        rows += [
            "",
            "| consumer | N | 1 replica rec/s (retries) | 2 replicas rec/s (retries) |",
            "|---|---:|---:|---:|",
        ]
        for r in report["replicas"]:
            one, two = r["x1"], r["x2"]
            rows.append(
                f"| {r['consumer']} | {r['n']:,} | {_r(one['rate'])} ({one['retries']}) | "
                f"{_r(two['rate'])} ({two['retries']}) |"
            )
    machine = report.get("machine", {})
    rows += [
        "",
        f"Machine: {machine.get('cpus')} cores, Python {machine.get('python')}, "
        f"{machine.get('platform')}; whole run {report.get('seconds')} s"
        + (
            f", {machine['cpu_steal']:.0%} of CPU time stolen by the hypervisor."
            if machine.get("cpu_steal") is not None
            else "."
        ),
    ]
    if report.get("seconds_by_part"):
        parts = ", ".join(f"{k} {v:g}" for k, v in report["seconds_by_part"].items())
        rows += ["", f"Seconds by part: {parts}."]
    return "\n".join(rows) + "\n"


def _repeat_rows(results: list[dict[str, Any]]) -> list[str]:
    """Every bracketed run of the cases run more than once (``--repeat``), and the median."""
    repeated = [r for r in results if r.get("repeats")]
    if not repeated:
        return []
    rows = [
        "",
        "| consumer | type | bracketed runs | batch / ceiling, each run | "
        "single / ceiling, each run | median batch / single |",
        "|---|---|---:|---|---|---:|",
    ]
    for r in repeated:
        each = {
            m: [f"{x[m + '_vs_ceiling']:.2f}" for x in r["repeats"]] for m in ("batch", "single")
        }
        rows.append(
            f"| {r['consumer']} | {r['data_type']} | {len(r['repeats'])} | "
            f"{', '.join(each['batch'])} | {', '.join(each['single'])} | "
            f"{r['batch_vs_ceiling']:.2f} / {r['single_vs_ceiling']:.2f} |"
        )
    return rows


def _ceiling(result: dict[str, Any]) -> str:
    runs = result.get("ceiling_runs")
    return " / ".join(_r(r) for r in runs) if runs else _r(result["ceiling_rate"])


def _bound_rows(results: list[dict[str, Any]]) -> list[str]:
    """Each stage alone (bench/bounds.py) and ours against the tightest of them."""
    rows = [
        "| consumer | type | writer alone rec/s (server + writer CPU µs/rec) | "
        "broker intake rec/s, batch / single | decode µs/rec, batch / single | "
        "CPU bound rec/s, batch / single | ours / bound, batch / single |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        b = r.get("bounds")
        if not b:
            continue
        w, intake, dec, cpu = b["writer_alone"], b["intake"], b["decode_us"], b["cpu_bound"]
        tight = {m: min(cpu[m], intake[m]) for m in ("batch", "single")}
        ratio = {m: r[m]["rate"] / tight[m] if tight[m] else None for m in tight}
        rows.append(
            f"| {r['consumer']} | {r['data_type']} | {_r(w['rate'])} "
            f"({_r(w['server_us_per_record'])} + {_r(w['writer_us_per_record'])}) | "
            f"{_r(intake['batch'])} / {_r(intake['single'])} | "
            f"{_r(dec['batch'])} / {_r(dec['single'])} | "
            f"{_r(cpu['batch'])} / {_r(cpu['single'])} | "
            f"{_r(ratio['batch'], 2)} / {_r(ratio['single'], 2)} |"
        )
    return rows


def main() -> int:
    report = json.loads((Path(sys.argv[1]) if len(sys.argv) > 1 else LATEST).read_text())
    text = tables(report)
    for target in TARGETS:
        if target.exists():
            body = target.read_text()
            new = _MARKED.sub(lambda m: m.group(1) + text + m.group(2), body)
            target.write_text(new)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
