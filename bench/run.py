"""`make bench`: ours vs ceiling vs baseline, side by side in one run, on the local servers.

Usage: python -m bench.run [--n N] [--types releases,artists] [--consumers ...]
                           [--no-growth] [--baseline-seconds S]
Writes bench/results/bench-<timestamp>.json and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import aio_pika

from bench import harness, stores
from common.amqp import Names
from common.records import DataType, Record

RESULTS = Path(__file__).resolve().parent / "results"
LOGS = RESULTS / "logs"
CONSUMERS = ("tableinator", "graphinator")
PORT = 18500


@contextmanager
def store_for(consumer: str) -> Iterator[dict[str, str]]:
    """A clean store for one run, as environment variables for the consumer."""
    if consumer == "tableinator":
        with stores.fresh_database() as dsn:
            yield {"POSTGRES_DSN": dsn}
    else:
        stores.clear_graph()
        try:
            yield {}
        finally:
            stores.clear_graph()


async def _delete_queues(prefix: str, service: str) -> None:
    names = Names(prefix, service)
    connection = await aio_pika.connect(harness.AMQP_URL)
    async with connection:
        channel = await connection.channel()
        for t in DataType:
            for queue in (names.queue(t), names.dead_letter_queue(t)):
                await channel.queue_delete(queue)
            await channel.exchange_delete(names.exchange(t))
        await channel.exchange_delete(names.dead_letter_exchange())


def run_case(
    consumer: str,
    data_type: DataType,
    records: list[Record],
    *,
    batch: int | None,
    baseline: bool = False,
    limit_s: float = 1800,
) -> dict[str, Any]:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    mode = "batch" if batch else "single"
    label = f"{consumer}-{data_type.value}-{'baseline' if baseline else mode}-{len(records)}"
    env = {"DISCOGS_EXCHANGE_PREFIX": prefix}
    if baseline:
        upper = "POSTGRES" if consumer == "tableinator" else "NEO4J"
        env |= {
            "AMQP_PREFETCH": "1",
            f"{upper}_BATCH_SIZE": "100",
            f"{upper}_BATCH_FLUSH_INTERVAL": "5",
        }
    with ExitStack() as stack:
        env |= stack.enter_context(store_for(consumer))
        harness.prefill_sync(prefix, consumer, data_type, records, batch)
        try:
            measured = harness.run_consumer(
                harness.service_command(consumer, baseline=baseline),
                env,
                data_type,
                len(records),
                log=LOGS / f"{label}.log",
                port=PORT,
                limit_s=limit_s,
            )
        finally:
            asyncio.run(_delete_queues(prefix, consumer))
    print(
        f"  {label}: {measured.rate:,.0f} records/s ({measured.seconds}s, "
        f"rss {measured.peak_rss_mb} MB)",
        flush=True,
    )
    return {"case": label, "mode": "baseline" if baseline else mode, **asdict(measured)}


def ceiling(consumer: str, data_type: DataType, records: list[Record]) -> float:
    if consumer == "tableinator":
        return stores.postgres_ceiling(records)
    return stores.neo4j_ceiling(data_type, records)


def bench_type(consumer: str, data_type: DataType, n: int, baseline_s: float) -> dict[str, Any]:
    records = harness.records_for(data_type, n)
    top = ceiling(consumer, data_type, records)
    print(f"  {consumer}-{data_type.value} ceiling: {top:,.0f} records/s", flush=True)
    batch = run_case(consumer, data_type, records, batch=500)
    single = run_case(consumer, data_type, records, batch=None)
    base = run_case(consumer, data_type, records, batch=None, baseline=True, limit_s=baseline_s)
    ratio = lambda a, b: round(a / b, 3) if b else None  # noqa: E731
    return {
        "consumer": consumer,
        "data_type": data_type.value,
        "n": n,
        "ceiling_rate": round(top, 1),
        "batch": batch,
        "single": single,
        "baseline": base,
        "batch_vs_ceiling": ratio(batch["rate"], top),
        "single_vs_ceiling": ratio(single["rate"], top),
        "batch_vs_baseline": ratio(batch["rate"], base["rate"]),
        "single_vs_baseline": ratio(single["rate"], base["rate"]),
    }


def bench_growth(consumer: str, n: int, base_rate: float) -> dict[str, Any]:
    out: dict[str, Any] = {"consumer": consumer, "data_type": "releases", "rate_n": base_rate}
    for factor in (4, 16):
        records = harness.records_for(DataType.RELEASES, n * factor, seed=factor)
        result = run_case(consumer, DataType.RELEASES, records, batch=500)
        out[f"rate_{factor}n"] = result["rate"]
        out[f"ratio_{factor}n"] = round(result["rate"] / base_rate, 3) if base_rate else None
    return out


def table(report: dict[str, Any]) -> str:
    head = (
        f"{'consumer':<12}{'type':<10}{'N':>7}{'ceiling':>10}{'batch':>9}{'single':>9}"
        f"{'baseline':>10}{'b/ceil':>8}{'s/ceil':>8}{'b/base':>9}{'rss MB':>8}{'p50':>7}{'p99':>7}"
    )
    lines = [head, "-" * len(head)]
    for r in report["results"]:
        lines.append(
            f"{r['consumer']:<12}{r['data_type']:<10}{r['n']:>7}{r['ceiling_rate']:>10,.0f}"
            f"{r['batch']['rate']:>9,.0f}{r['single']['rate']:>9,.0f}{r['baseline']['rate']:>10,.1f}"
            f"{r['batch_vs_ceiling'] or 0:>8.2f}{r['single_vs_ceiling'] or 0:>8.2f}"
            f"{r['batch_vs_baseline'] or 0:>9,.0f}{r['batch']['peak_rss_mb']:>8}"
            f"{r['batch']['batch_p50_ms'] or 0:>7}{r['batch']['batch_p99_ms'] or 0:>7}"
        )
    for g in report.get("growth", []):
        lines.append(
            f"growth {g['consumer']}: N {g['rate_n']:,.0f}/s, 4N {g['rate_4n']:,.0f}/s "
            f"({g['ratio_4n']}), 16N {g['rate_16n']:,.0f}/s ({g['ratio_16n']})"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=int(os.environ.get("BENCH_N", "5000")))
    parser.add_argument("--types", default="releases,artists")
    parser.add_argument("--consumers", default=",".join(CONSUMERS))
    parser.add_argument("--no-growth", action="store_true")
    parser.add_argument("--baseline-seconds", type=float, default=20.0)
    args = parser.parse_args()
    LOGS.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    report: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "results": [],
        "growth": [],
    }
    for consumer in args.consumers.split(","):
        for name in args.types.split(","):
            print(f"{consumer} / {name}", flush=True)
            report["results"].append(
                bench_type(consumer, DataType(name), args.n, args.baseline_seconds)
            )
        if not args.no_growth and "releases" in args.types:
            rel = next(
                r
                for r in report["results"]
                if r["consumer"] == consumer and r["data_type"] == "releases"
            )
            report["growth"].append(bench_growth(consumer, args.n, rel["batch"]["rate"]))
    report["seconds"] = round(time.monotonic() - started, 1)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = RESULTS / f"bench-{stamp}.json"
    out.write_text(json.dumps(report, indent=2))
    (RESULTS / "latest.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    print("\n" + table(report))
    print(f"\nwritten {out} in {report['seconds']}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
