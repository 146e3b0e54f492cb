"""Beyond one load: growth (past N, 4N, 16N), one against two replicas, monthly updates."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from pathlib import Path
from typing import Any

from bench import harness
from bench.cases import LOGS, PORT, delete_queues, run_case, store_for
from common.records import DataType, Record, canonical_json


def bench_growth(consumer: str, n: int) -> dict[str, Any]:
    """One load of 16n releases; the rate while the store grows to n, 4n and 16n.

    From the consumer's ``Batch processed`` lines: at n, the rate from its first batch to
    the n-th record (start-up and the first batch's fill left out); at 4n, that of the
    records from 2n to 4n; at 16n, from 12n to 16n. Wider windows at the later marks: a
    window of a few batches moves by ±30% with these machines' drift.
    """
    records = harness.records_for(DataType.RELEASES, 16 * n, seed=16)
    result = run_case(consumer, DataType.RELEASES, records, batch=500)
    progress = batch_progress(LOGS / f"{result['case']}.log")
    out: dict[str, Any] = {"consumer": consumer, "data_type": "releases", "n": n}
    for key, low, high in (
        ("rate_n", 0, n),
        ("rate_4n", 2 * n, 4 * n),
        ("rate_16n", 12 * n, 16 * n),
    ):
        out[key] = window_rate(progress, low, high)
    for factor in (4, 16):
        base, grown = out["rate_n"], out[f"rate_{factor}n"]
        out[f"ratio_{factor}n"] = round(grown / base, 3) if base and grown else None
    return out


def batch_progress(log: Path) -> list[tuple[float, int]]:
    """(wall time, records committed so far) at each ``Batch processed`` line of ``log``."""
    out = []
    for fields in harness.log_events(log, "Batch processed"):
        stamp, total = harness.event_time(fields), fields.get("total")
        if stamp is not None and isinstance(total, int):
            out.append((stamp, total))
    return out


def window_rate(progress: list[tuple[float, int]], low: int, high: int) -> float | None:
    """Records/s from the first point at or past ``low`` records to the first at ``high``."""
    first = next((p for p in progress if p[1] >= low), None)
    last = next((p for p in progress if p[1] >= high), None)
    if first is None or last is None or last[0] <= first[0]:
        return None
    return round((last[1] - first[1]) / (last[0] - first[0]), 1)


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
