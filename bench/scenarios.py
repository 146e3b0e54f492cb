"""Beyond one load: growth (N, 4N, 16N), one against two replicas, and monthly updates."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from typing import Any

from bench import harness
from bench.cases import LOGS, PORT, delete_queues, run_case, store_for
from common.records import DataType, Record, canonical_json


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
