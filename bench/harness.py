"""Runs one consumer as a subprocess on a pre-filled queue and measures it.

Timing runs from the process start until ``/health`` shows that the type's
``extraction_complete`` was handled, which the runtime does only after every record
before it has been committed (and, for tableinator, indexes rebuilt).
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika

from bench.generate import generate
from common.amqp import Names, declare_topology
from common.records import DataType, Record
from extractor.broker import ConfirmingPublisher
from extractor.envelopes import batch_body, data_body, extraction_complete_body, file_complete_body

AMQP_URL = os.environ.get("AMQP_URL", "amqp://discogs:discogs@127.0.0.1:5672/")
VERSION = "20260101"
BIN = Path(sys.executable).parent


@dataclass
class Measured:
    records: int
    seconds: float
    rate: float
    peak_rss_mb: float
    workers_rss_mb: float  # peak RSS of its child processes together (decode workers)
    batch_p50_ms: float | None
    batch_p99_ms: float | None
    complete: bool
    steady_rate: float | None  # from the moment it was consuming, so start-up is left out
    # consumer CPU seconds (its decode workers included) / wall seconds (1.0 = one core)
    cpu_share: float


async def prefill(
    prefix: str,
    service: str,
    data_type: DataType,
    records: list[Record],
    *,
    batch: int | None,
    version: str = VERSION,
) -> None:
    """Declare ``service``'s queues, then publish ``records`` and the completion messages."""
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        await declare_topology(channel, Names(prefix, service), delivery_limit=20)
    async with ConfirmingPublisher(AMQP_URL, prefix) as publisher:
        if batch:
            for i in range(0, len(records), batch):
                await publisher.publish(
                    data_type, batch_body(data_type, version, records[i : i + batch])
                )
        else:
            for record in records:
                await publisher.publish(data_type, data_body(version, record))
        name = f"discogs_{version}_{data_type.value}.xml.gz"
        await publisher.publish(
            data_type, file_complete_body(data_type, name, version, len(records))
        )
        body = extraction_complete_body(version, datetime.now(UTC), {data_type: len(records)})
        await publisher.publish(data_type, body)
        await publisher.flush()


def records_for(data_type: DataType, n: int, seed: int = 1, first_id: int = 1) -> list[Record]:
    """The generated records (a new list; the records themselves are shared)."""
    return list(_generated(data_type, n, seed, first_id))


@functools.lru_cache(maxsize=16)
def _generated(data_type: DataType, n: int, seed: int, first_id: int) -> tuple[Record, ...]:
    # 64,000 releases take 5-10 s to generate, and the bench asks for the same ones again
    # (the baselines, and both consumers' growth, replicas and updates).
    return tuple(generate(data_type, n, seed=seed, first_id=first_id, id_space=n))


def health(port: int) -> dict[str, object] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
            return json.loads(r.read())  # type: ignore[no-any-return]
    except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
        return None


def _peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@dataclass(frozen=True)
class Proc:
    """One process as /proc shows it: name, parent, CPU seconds (user + system) so far."""

    pid: int
    name: str
    ppid: int
    cpu_s: float


def processes() -> list[Proc]:
    """Every process on the machine, read from /proc (those that vanish meanwhile skipped)."""
    out = []
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / tick
        out.append(Proc(int(entry.name), name, int(fields[1]), cpu))
    return out


def log_events(log: Path, event: str) -> Iterator[dict[str, Any]]:
    """The JSON lines of a consumer's log that are ``event`` (unreadable lines skipped)."""
    mark = f'"{event}"'
    for line in log.read_text(errors="replace").splitlines():
        if mark not in line:
            continue
        try:
            fields = json.loads(line)
        except ValueError:
            continue
        if isinstance(fields, dict) and fields.get("event") == event:
            yield fields


def event_time(fields: dict[str, Any]) -> float | None:
    """Wall-clock time of a log line (its ISO ``timestamp``), if it has a readable one."""
    stamp = fields.get("timestamp")
    if not isinstance(stamp, str):
        return None
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def batch_latencies(log: Path) -> list[float]:
    out = []
    for fields in log_events(log, "Batch processed"):
        try:
            out.append(float(fields["duration_ms"]))
        except (ValueError, KeyError, TypeError):
            continue
    return sorted(out)


def consuming_at(log: Path) -> float | None:
    """Wall-clock time of the consumer's ``consuming`` event (start-up done)."""
    first = next(log_events(log, "consuming"), None)
    return event_time(first) if first is not None else None


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return round(values[min(len(values) - 1, int(q * len(values)))], 1)


def run_consumer(
    command: list[str],
    env: dict[str, str],
    data_type: DataType,
    expected: int,
    *,
    log: Path,
    port: int,
    limit_s: float,
    attach: Callable[[int], Callable[[], None]] | None = None,
) -> Measured:
    """Start ``command``; wait for completion (or ``limit_s``); stop it; measure.

    ``attach``: called with the consumer's pid once it is started (a profiler); what it
    returns is called when the load is complete, before the consumer is stopped.
    """
    full_env = {**os.environ, **env, "HEALTH_PORT": str(port), "LOG_FORMAT": "json"}
    started = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(command, env=full_env, stdout=out, stderr=subprocess.STDOUT)
    detach = attach(proc.pid) if attach is not None else None
    done, committed = False, 0
    try:
        while time.monotonic() - started < limit_s and proc.poll() is None:
            h = health(port)
            if h:
                stats = h["types"][data_type.value]  # type: ignore[index]
                committed = stats["written"] + stats["unchanged"]
                if stats["extraction_complete"]:
                    done = True
                    break
            time.sleep(0.1)
        seconds = time.monotonic() - started
        finished_wall = time.time()
        rss = _peak_rss_mb(proc.pid)
        family = [p for p in processes() if proc.pid in (p.pid, p.ppid)]  # + decode workers
        workers_rss = sum(_peak_rss_mb(p.pid) for p in family if p.pid != proc.pid)
        cpu = sum(p.cpu_s for p in family)
    finally:
        if detach is not None:
            detach()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    latencies = batch_latencies(log)
    consuming = consuming_at(log)
    done_records = expected if done else committed
    steady = None
    if consuming is not None and finished_wall > consuming:
        steady = round(done_records / (finished_wall - consuming), 1)
    return Measured(
        records=expected if done else committed,
        seconds=round(seconds, 2),
        rate=round((expected if done else committed) / seconds, 1),
        peak_rss_mb=round(rss, 1),
        workers_rss_mb=round(workers_rss, 1),
        batch_p50_ms=_pct(latencies, 0.5),
        batch_p99_ms=_pct(latencies, 0.99),
        complete=done,
        steady_rate=steady,
        cpu_share=round(cpu / seconds, 2) if seconds else 0.0,
    )


def service_command(service: str, *, baseline: bool = False) -> list[str]:
    if baseline:
        return [sys.executable, "-m", "bench.baseline", service]
    return [str(BIN / service)]


def prefill_sync(
    prefix: str,
    service: str,
    data_type: DataType,
    records: list[Record],
    *,
    batch: int | None,
    version: str = VERSION,
) -> None:
    asyncio.run(prefill(prefix, service, data_type, records, batch=batch, version=version))


def run_replicas(
    command: list[str],
    env: dict[str, str],
    data_type: DataType,
    expected: int,
    *,
    replicas: int,
    logs: Path,
    first_port: int,
    limit_s: float,
) -> dict[str, float | int]:
    """Start ``replicas`` copies on the same queues; time until they committed ``expected``."""
    started = time.monotonic()
    procs = []
    for i in range(replicas):
        full_env = {**os.environ, **env, "HEALTH_PORT": str(first_port + i), "LOG_FORMAT": "json"}
        with (logs / f"replica-{i}.log").open("wb") as out:
            procs.append(
                subprocess.Popen(command, env=full_env, stdout=out, stderr=subprocess.STDOUT)
            )
    committed = 0
    try:
        while time.monotonic() - started < limit_s and committed < expected:
            counts = []
            for i in range(replicas):
                h = health(first_port + i)
                stats = h["types"][data_type.value] if h else {}  # type: ignore[index]
                counts.append(stats.get("written", 0) + stats.get("unchanged", 0))
            committed = sum(counts)
            time.sleep(0.1)
        seconds = time.monotonic() - started
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=60)
    retries = sum(
        line.count('"write retry"') + line.count("graph_write_retry")
        for i in range(replicas)
        for line in (logs / f"replica-{i}.log").read_text(errors="replace").splitlines()
    )
    return {
        "replicas": replicas,
        "records": committed,
        "seconds": round(seconds, 2),
        "rate": round(committed / seconds, 1),
        "retries": retries,
    }


def alternating(
    pairs: int, names: tuple[str, str], one: Callable[[str], Any], label: str
) -> list[dict[str, Any]]:
    """``pairs`` runs of two variants side by side, which goes first alternating from pair
    to pair (a drift of the machine's speed then weighs on both alike); each pair printed
    as it ends."""
    runs = []
    for p in range(pairs):
        order = names if p % 2 == 0 else names[::-1]
        pair = {name: one(name) for name in order}
        print(f"  {label} pair {p + 1}: {json.dumps(pair)}", flush=True)
        runs.append(pair)
    return runs


def paired_ratios(
    pairs: list[dict[str, dict[str, Any]]], new: str, base: str, keys: Iterable[str]
) -> dict[str, Any]:
    """Per pair, ``new`` / ``base`` of each figure in ``keys``; and their medians."""
    ratios = {key: [round(p[new][key] / p[base][key], 3) for p in pairs] for key in keys}
    return {"ratios": ratios, "medians": {k: statistics.median(v) for k, v in ratios.items()}}
