"""The extractor alone, ``--workers 1`` against ``--workers 2``, side by side in one run.
Builds a releases dump from the sample's records (``bench.extractor_memory.write_dump``),
binds a queue to a throwaway exchange, and publishes the dump with ``extractor publish``
with each worker count in turn (the order alternating between pairs), emptying the queue
after every run. ``--dump P``: the whole bench dump of ``bench.dumpgen`` at P % (all four
types, ``make bench-dump``'s) instead, its rate taken over the wall time. For each run:
wall time, the records/s, CPU seconds of the extractor and its workers, and the peak of
the summed RSS of all its processes. Prints the pairs and the median ratio, and writes
them to bench/results/extractor_workers[_<P>pct].json (or ``--out NAME``'s). Usage:
python -m bench.extractor_workers [--records N | --dump PERCENT] [--pairs P] [--out NAME]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aio_pika

from bench import dump_bench
from bench.extractor_memory import write_dump
from bench.harness import AMQP_URL, BIN

TYPES = ("artists", "labels", "masters", "releases")


async def _queues(prefix: str, *, create: bool = False, purge: bool = False) -> None:
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        for t in TYPES:
            name = f"{prefix}-{t}"
            if create:
                exchange = await channel.declare_exchange(
                    name, aio_pika.ExchangeType.FANOUT, durable=True
                )
                queue = await channel.declare_queue(name, arguments={"x-queue-type": "classic"})
                await queue.bind(exchange)
            elif purge:
                await (await channel.declare_queue(name, passive=True)).purge()
            else:
                await channel.queue_delete(name)
                await channel.exchange_delete(name)


_TICK = os.sysconf("SC_CLK_TCK")


def _sample_tree(root: int, cpu: dict[int, float]) -> float:
    """Summed VmRSS (MB) of ``root`` and its descendants now; ``cpu`` gets each one's CPU
    seconds so far (the last sample before a process ends is what remains)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            cpu[pid] = (int(fields[11]) + int(fields[12])) / _TICK
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            continue
    return total


def run_once(path: Path, prefix: str, workers: int) -> dict[str, float]:
    env = {**os.environ, "DISCOGS_EXCHANGE_PREFIX": prefix, "LOG_FORMAT": "json"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [str(BIN / "extractor"), "publish", str(path), "--workers", str(workers)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        peak = 0.0
        cpu: dict[int, float] = {}
        while proc.poll() is None:
            peak = max(peak, _sample_tree(proc.pid, cpu))
            time.sleep(0.05)
        wall = time.monotonic() - started
        err.seek(0)
        lines = err.read().decode().splitlines()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"extractor exited {proc.returncode}: {lines[-1:]}")
    files = [json.loads(x) for x in lines if '"file published"' in x]
    records = sum(int(f["records"]) for f in files)
    total_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    asyncio.run(_queues(prefix, purge=True))
    return {
        "workers": workers,
        "wall_s": round(wall, 2),
        "records": records,
        "records_per_s": round(records / wall),
        "file_records_per_s": files[0]["records_per_s"] if len(files) == 1 else None,
        "cpu_s": round(total_cpu, 1),
        "main_cpu_s_sampled": round(cpu.get(proc.pid, 0.0), 1),
        "peak_rss_mb": round(peak, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--dump", type=float, help="the bench dump at this percent instead")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--out", help="the results file's name in bench/results (no .json)")
    args = parser.parse_args()
    prefix = f"bench-workers-{uuid.uuid4().hex[:8]}"
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "discogs_20260101_releases.xml.gz"
        if args.dump:
            path = dump_bench.dump_folder(args.dump)
        else:
            write_dump(path, args.records)
        asyncio.run(_queues(prefix, create=True))
        try:
            for i in range(args.pairs):
                order = (1, 2) if i % 2 == 0 else (2, 1)  # alternate: neither always first
                pair = sorted(
                    ({"load_1min": os.getloadavg()[0]} | run_once(path, prefix, w) for w in order),
                    key=lambda r: r["workers"],
                )
                runs.append(pair)
                sys.stdout.write(json.dumps(pair) + "\n")
        finally:
            asyncio.run(_queues(prefix))
    rate = "records_per_s" if args.dump else "file_records_per_s"
    ratios = [p[1][rate] / p[0][rate] for p in runs]
    walls = [p[0]["wall_s"] / p[1]["wall_s"] for p in runs]
    report = {
        "records": runs[0][0]["records"],
        "dump_percent": args.dump,
        "cpus": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "pairs": runs,
        "median_rate_ratio": round(statistics.median(ratios), 2),
        "median_wall_ratio": round(statistics.median(walls), 2),
    }
    sys.stdout.write(json.dumps({k: v for k, v in report.items() if k != "pairs"}) + "\n")
    name = f"extractor_workers_{args.dump:g}pct" if args.dump else "extractor_workers"
    name = args.out or name
    out = Path(__file__).parent / "results" / f"{name}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
