"""`make bench`: ours vs ceiling vs baseline, side by side in one run, on the local servers.

Usage: python -m bench.run [--n N] [--types releases,artists] [--consumers ...]
                           [--no-growth] [--baseline-seconds S]
Writes bench/results/bench-<timestamp>.json and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
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

from bench import bounds, harness, stores
from bench.report import tables as report_tables
from common.amqp import Names
from common.decoding import tune_gc
from common.records import DataType, Record, canonical_json

RESULTS = Path(__file__).resolve().parent / "results"
LOGS = RESULTS / "logs"
CONSUMERS = ("tableinator", "graphinator")
PORT = 18500
# Records per case are N times these. A consumer takes ~0.4 s to start (imports,
# connections, the decode worker's spawn), which is part of every measured time: small
# records and the faster consumer need more records for it to stop mattering (a real dump
# runs for hours), so that each case runs for several seconds.
_SCALE: dict[tuple[str, str], int] = {
    ("tableinator", "releases"): 4,
    ("tableinator", "artists"): 4,
    ("tableinator", "masters"): 4,
    ("tableinator", "labels"): 4,
    ("graphinator", "artists"): 2,
    ("graphinator", "masters"): 2,
    ("graphinator", "labels"): 2,
}
# Releases and artists first: the two size classes the targets are judged on.
_TYPES = (DataType.RELEASES, DataType.ARTISTS, DataType.MASTERS, DataType.LABELS)
# Each stage alone (bench/bounds.py) is measured for these types only: one of each size
# class (release documents ~3 KB, artist records ~0.5 KB; masters and labels fall between
# and below them), which is what the bounds are there to explain.
_BOUNDED_TYPES = frozenset({DataType.RELEASES, DataType.ARTISTS})
# The baseline commits about one record per 5 s flush, so its time-boxed run takes only
# the first records of the case's own data: publishing all of them would add minutes.
_BASELINE_RECORDS = 2_000


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


async def delete_queues(prefix: str, service: str) -> None:
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
        harness.prefill_sync(prefix, consumer, data_type, records, batch=batch)
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
            asyncio.run(delete_queues(prefix, consumer))
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


_INTAKE: dict[tuple[DataType, int], dict[str, float]] = {}


def measure_bounds(consumer: str, data_type: DataType, records: list[Record]) -> dict[str, Any]:
    """Each stage alone (bench/bounds.py); the broker intake once per type and size."""
    key = (data_type, len(records))
    if key not in _INTAKE:
        _INTAKE[key] = bounds.intake(data_type, records)
    writer = bounds.writer_alone(consumer, data_type, records)
    decode = bounds.decode_cost(consumer, data_type, records)
    cores = os.cpu_count() or 1
    out = {
        "writer_alone": writer,
        "intake": _INTAKE[key],
        "decode_us": decode,
        "cpu_bound": {mode: bounds.cpu_bound(cores, writer, decode[mode]) for mode in decode},
    }
    print(f"  {consumer}-{data_type.value} bounds: {out}", flush=True)
    return out


def _bracketed(consumer: str, data_type: DataType, records: list[Record]) -> dict[str, Any]:
    """Ours with batch and with one-record messages, each between two ceilings.

    Each ratio uses the mean of the ceilings measured right before and right after its run:
    the machines this runs on drift in speed by tens of percent within a minute, and a
    bracket cancels a drift that a ceiling measured once, a minute away, would put in it.
    """
    runs = [ceiling(consumer, data_type, records)]
    batch = run_case(consumer, data_type, records, batch=500)
    runs.append(ceiling(consumer, data_type, records))
    single = run_case(consumer, data_type, records, batch=None)
    runs.append(ceiling(consumer, data_type, records))
    tops = {"batch": (runs[0] + runs[1]) / 2, "single": (runs[1] + runs[2]) / 2}
    print(f"  {consumer}-{data_type.value} ceilings: {[round(r) for r in runs]}", flush=True)
    return {
        # before batch, between batch and single, after single
        "ceiling_runs": [round(r, 1) for r in runs],
        "batch": batch,
        "single": single,
        "batch_vs_ceiling": _ratio(batch["rate"], tops["batch"]),
        "single_vs_ceiling": _ratio(single["rate"], tops["single"]),
    }


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def _median(repeats: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """The repetition whose ``key`` ratio is the median (the lower one of an even count)."""
    ranked = sorted(repeats, key=lambda r: r[key] or 0.0)
    return ranked[(len(ranked) - 1) // 2]


def bench_type(
    consumer: str, data_type: DataType, n: int, baseline_s: float, repeat: int = 1
) -> dict[str, Any]:
    records = harness.records_for(data_type, n)
    if consumer == "graphinator":  # Neo4j's JIT: the first statements of a fresh JVM are slow
        ceiling(consumer, data_type, records[: min(n, 5000)])
    limits = measure_bounds(consumer, data_type, records) if data_type in _BOUNDED_TYPES else None
    repeats = [_bracketed(consumer, data_type, records) for _ in range(repeat)]
    mid_batch, mid_single = (
        _median(repeats, "batch_vs_ceiling"),
        _median(repeats, "single_vs_ceiling"),
    )
    base = run_case(
        consumer,
        data_type,
        records[:_BASELINE_RECORDS],
        batch=None,
        baseline=True,
        limit_s=baseline_s,
    )
    runs = mid_batch["ceiling_runs"]
    return {
        "consumer": consumer,
        "data_type": data_type.value,
        "n": n,
        "ceiling_rate": round(sum(runs) / len(runs), 1),
        "ceiling_runs": runs,
        **({"bounds": limits} if limits else {}),
        "batch": mid_batch["batch"],
        "single": mid_single["single"],
        "baseline": base,
        "batch_vs_ceiling": mid_batch["batch_vs_ceiling"],
        "single_vs_ceiling": mid_single["single_vs_ceiling"],
        "batch_vs_baseline": _ratio(mid_batch["batch"]["rate"], base["rate"]),
        "single_vs_baseline": _ratio(mid_single["single"]["rate"], base["rate"]),
        **({"repeats": repeats} if repeat > 1 else {}),
    }


def bench_growth(consumer: str, n: int) -> dict[str, Any]:
    """Steady rates (start-up left out) at n, 4n and 16n releases, each on a fresh store."""
    out: dict[str, Any] = {"consumer": consumer, "data_type": "releases", "n": n}
    for factor in (1, 4, 16):
        records = harness.records_for(DataType.RELEASES, n * factor, seed=factor)
        result = run_case(consumer, DataType.RELEASES, records, batch=500)
        out[f"rate_{factor}n" if factor > 1 else "rate_n"] = result["steady_rate"]
    for factor in (4, 16):
        base, grown = out["rate_n"], out[f"rate_{factor}n"]
        out[f"ratio_{factor}n"] = round(grown / base, 3) if base and grown else None
    return out


def bench_replicas(consumer: str, n: int) -> dict[str, Any]:
    """One against two replicas on the same pre-filled queue (releases, batch messages)."""
    records = harness.records_for(DataType.RELEASES, n, seed=5)
    out: dict[str, Any] = {"consumer": consumer, "n": n}
    for count in (1, 2):
        prefix = f"bench-{uuid.uuid4().hex[:8]}"
        with store_for(consumer) as env:
            harness.prefill_sync(prefix, consumer, DataType.RELEASES, records, batch=500)
            logs = LOGS / f"{consumer}-replicas-{count}"
            logs.mkdir(parents=True, exist_ok=True)
            try:
                out[f"x{count}"] = harness.run_replicas(
                    harness.service_command(consumer),
                    {**env, "DISCOGS_EXCHANGE_PREFIX": prefix},
                    DataType.RELEASES,
                    n,
                    replicas=count,
                    logs=logs,
                    first_port=PORT + 10,
                    limit_s=1800,
                )
            finally:
                asyncio.run(delete_queues(prefix, consumer))
    print(f"  {consumer} replicas: {out}", flush=True)
    return out


def _delta(records: list[Record], n_new_from: int) -> list[Record]:
    """The next month: 1% removed, 1% changed, 1% added."""
    k = max(len(records) // 100, 1)
    kept = records[k:]
    changed = []
    for r in kept[:k]:
        data = {**r.data, "title": f"{r.data.get('title', '')} (remastered)"}
        changed.append(Record(r.id, hashlib.sha256(canonical_json(data)).hexdigest(), data))
    added = harness.records_for(DataType.RELEASES, k, seed=99, first_id=n_new_from)
    return changed + kept[k:] + added


def bench_updates(consumer: str, n: int) -> dict[str, Any]:
    """First load, the same data as next month's dump, then a 1%/1%/1% delta."""
    base = harness.records_for(DataType.RELEASES, n)
    months = [("20260101", base), ("20260201", base), ("20260301", _delta(base, n + 1))]
    out: dict[str, Any] = {"consumer": consumer, "n": n}
    with store_for(consumer) as env:
        for key, (version, records) in zip(("first_s", "again_s", "delta_s"), months, strict=True):
            prefix = f"bench-{uuid.uuid4().hex[:8]}"
            harness.prefill_sync(
                prefix, consumer, DataType.RELEASES, records, batch=500, version=version
            )
            try:
                measured = harness.run_consumer(
                    harness.service_command(consumer),
                    {**env, "DISCOGS_EXCHANGE_PREFIX": prefix},
                    DataType.RELEASES,
                    len(records),
                    log=LOGS / f"{consumer}-update-{version}.log",
                    port=PORT,
                    limit_s=1800,
                )
            finally:
                asyncio.run(delete_queues(prefix, consumer))
            out[key] = measured.seconds
    print(f"  {consumer} updates: {out}", flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=int(os.environ.get("BENCH_N", "16000")))
    parser.add_argument("--types", default=",".join(t.value for t in _TYPES))
    parser.add_argument("--consumers", default=",".join(CONSUMERS))
    parser.add_argument("--no-growth", action="store_true")
    parser.add_argument("--no-updates", action="store_true")
    parser.add_argument("--no-replicas", action="store_true")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="bracketed runs per case; the median ratio is reported (all runs in the JSON)",
    )
    parser.add_argument("--name", default="latest", help="results file: bench/results/NAME.json")
    # Long enough for two of the baseline's 5 s flushes after its start-up.
    parser.add_argument("--baseline-seconds", type=float, default=12.0)
    args = parser.parse_args()
    LOGS.mkdir(parents=True, exist_ok=True)
    tune_gc()  # as the consumers do: the decode costs measured here must compare
    started = time.monotonic()
    report: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "results": [],
        "growth": [],
        "updates": [],
        "replicas": [],
    }
    for consumer in args.consumers.split(","):
        for name in args.types.split(","):
            print(f"{consumer} / {name}", flush=True)
            n = args.n * _SCALE.get((consumer, name), 1)
            report["results"].append(
                bench_type(consumer, DataType(name), n, args.baseline_seconds, args.repeat)
            )
        if not args.no_growth:
            report["growth"].append(bench_growth(consumer, max(args.n // 4, 500)))
        if not args.no_replicas:
            report["replicas"].append(bench_replicas(consumer, max(args.n // 2, 500)))
        if not args.no_updates:
            report["updates"].append(bench_updates(consumer, args.n))
    report["seconds"] = round(time.monotonic() - started, 1)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = RESULTS / f"bench-{stamp}.json"
    out.write_text(json.dumps(report, indent=2))
    (RESULTS / f"{args.name}.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    print("\n" + report_tables(report))
    print(f"\nwritten {out} in {report['seconds']}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
