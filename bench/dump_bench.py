"""``make bench-dump``: a dump shaped like the real one through the extractor, measured.

Writes (or reuses) the dump of ``bench.dumpgen`` at ``--percent`` % of the real dump's
size, declares both consumers' queues on a throwaway prefix (as the consumers would, so
nothing is unroutable), and measures (a) the extractor alone publishing the whole dump
into them: wall time, records/s, CPU seconds of the extractor's processes and of each
server, peak RSS of the extractor's processes, and the projection to the full dump. The
queues are deleted afterwards. Results go to bench/results/dump_extractor_<percent>.json.

Not measured yet (see the issue): (b) both consumers draining the full queues, (c) the
whole pipeline together, and the 5 % growth check.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aio_pika

from bench import dumpgen
from bench.harness import AMQP_URL, BIN, processes
from common.amqp import Names, declare_topology
from common.records import DataType

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("graphinator", "tableinator")
# Process names of the three servers in /proc (the JVM is Neo4j's).
SERVERS = {"rabbitmq": "beam.smp", "neo4j": "java", "postgres": "postgres"}
FULL_RECORDS = sum(dumpgen.FULL_DUMP.values())


async def topology(prefix: str, *, delete: bool = False) -> None:
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        for service in SERVICES:
            names = Names(prefix, service)
            if not delete:
                await declare_topology(channel, names, delivery_limit=20)
                continue
            for t in DataType:
                await channel.queue_delete(names.queue(t))
                await channel.queue_delete(names.dead_letter_queue(t))
            await channel.exchange_delete(names.dead_letter_exchange())
        if delete:
            for t in DataType:
                await channel.exchange_delete(f"{prefix}-{t.value}")


def server_cpu() -> dict[str, float]:
    out = dict.fromkeys(SERVERS, 0.0)
    for proc in processes():
        for server, name in SERVERS.items():
            if proc.name == name:
                out[server] += proc.cpu_s
    return out


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for proc in processes():
        children.setdefault(proc.ppid, []).append(proc.pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _rss_mb(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            continue
    return total


def extractor_alone(dest: Path, prefix: str, workers: int | None) -> dict[str, Any]:
    env = {**os.environ, "DISCOGS_EXCHANGE_PREFIX": prefix, "LOG_FORMAT": "json"}
    command = [str(BIN / "extractor"), "publish", str(dest)]
    if workers:
        command += ["--workers", str(workers)]
    servers_before = server_cpu()
    before = os.times()
    started = time.monotonic()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=err)
        peak = 0.0
        while proc.poll() is None:
            peak = max(peak, _rss_mb(_tree(proc.pid)))
            time.sleep(0.2)
        wall = time.monotonic() - started
        err.seek(0)
        text = err.read().decode().splitlines()
    after = os.times()
    if proc.returncode != 0:
        raise RuntimeError(f"extractor exited {proc.returncode}: {text[-1:]}")
    lines = [json.loads(x) for x in text if x.startswith("{")]
    servers_after = server_cpu()
    files = {e["file"]: e for e in lines if e.get("event") == "file published"}
    records = sum(int(e["records"]) for e in files.values())
    rate = records / wall
    return {
        "records": records,
        "wall_s": round(wall, 1),
        "records_per_s": round(rate),
        "per_file_records_per_s": {f: e["records_per_s"] for f, e in files.items()},
        "extractor_cpu_s": round(
            (after.children_user - before.children_user)
            + (after.children_system - before.children_system),
            1,
        ),
        "server_cpu_s": {s: round(servers_after[s] - servers_before[s], 1) for s in SERVERS},
        "peak_rss_mb": round(peak, 1),
        "full_dump_projection_h": round(FULL_RECORDS / rate / 3600, 2),
    }


def dump_folder(percent: float, dest: Path | None = None) -> Path:
    """The bench dump at ``percent`` % (default folder bench/dumps/<percent>pct), written
    first if it is not there yet."""
    dest = dest or ROOT / "bench" / "dumps" / f"{percent:g}pct"
    if not all((dest / f"discogs_{dumpgen.VERSION}_{t.value}.xml.gz").exists() for t in DataType):
        started = time.monotonic()
        dumpgen.write(dest, percent)
        sys.stdout.write(f"dump written to {dest} in {time.monotonic() - started:.0f} s\n")
    return dest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--percent", type=float, default=1.0)
    parser.add_argument("--dest", type=Path, help="dump folder (default: bench/dumps/<percent>)")
    parser.add_argument("--workers", type=int, help="extractor --workers (default: its own)")
    args = parser.parse_args()
    dest = dump_folder(args.percent, args.dest)
    prefix = f"bench-dump-{uuid.uuid4().hex[:8]}"
    asyncio.run(topology(prefix))
    try:
        alone = extractor_alone(dest, prefix, args.workers)
    finally:
        asyncio.run(topology(prefix, delete=True))
    report = {
        "percent": args.percent,
        "counts": {t.value: n for t, n in dumpgen.counts(args.percent).items()},
        "cpus": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "extractor_alone": alone,
    }
    sys.stdout.write(json.dumps(report, indent=2) + "\n")
    sys.stdout.write(
        f"extractor alone: {alone['records_per_s']:,} records/s; the full dump "
        f"({FULL_RECORDS:,} records) in about {alone['full_dump_projection_h']} h\n"
    )
    out = ROOT / "bench" / "results" / f"dump_extractor_{args.percent:g}pct.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
