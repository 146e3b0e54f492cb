"""`make profile`: where a consumer's CPU goes while it loads a pre-filled queue.

Usage: python -m bench.profile [--consumer tableinator] [--type artists] [--mode single]
                               [--n N] [--rate HZ]

The consumer runs exactly as in `make bench` (same data, same defaults, queue pre-filled
by the extractor's publisher), with py-spy attached to it and its decode workers. Each
CPU sample is put in the stage of its innermost frame that belongs to one (decoding, the
write path, the broker client, ...): a leaf inside asyncio's streams called by aiormq is
the broker client's cost. The CPU seconds of every process on the machine over the same
load (the consumer, its workers, the database server, RabbitMQ) come from /proc.

Writes bench/results/profiles/<consumer>-<type>-<mode>.json and .md (the tables quoted by
docs/performance.md) and prints the table. Needs ptrace rights (root, or a container with
SYS_PTRACE).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from bench import harness
from bench.cases import LOGS, PORT, RESULTS, delete_queues, store_for
from common.records import DataType

PROFILES = RESULTS / "profiles"
# (stage, substrings of a py-spy frame "function (path:line)"); the first stage with a
# match, walking from the innermost frame outwards, takes the sample. The event loop
# comes last: it is the caller of everything, so it gets only what no other stage claims;
# the runtime's stage (common/) therefore includes the asyncio calls our runtime makes
# (futures, queues, tasks), not only its own lines.
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "decode: parse, normalise, hash",
        ("common/messages.py", "common/normalise", "orjson", "canonical_json (common/records"),
    ),
    (
        "decode: projection for the writer",
        ("slim_record", "decode_projected", "graph_record", "_keep (graphinator/rows"),
    ),
    ("decode worker hand-off (pickle, pipes)", ("multiprocessing/", "concurrent/futures/")),
    (
        "write path (driver, writer, COPY rows)",
        ("psycopg", "neo4j/", "tableinator/", "graphinator/"),
    ),
    # Our frame reader and the consumer below aio-pika are the broker client's work too.
    (
        "broker client (aiormq, aio-pika, pamqp)",
        ("aiormq/", "aio_pika/", "pamqp/", "common/inbound.py"),
    ),
    ("batching, settling, acks (common/)", ("common/",)),
    ("logging", ("structlog/", "logging/")),
    ("event loop (asyncio)", ("asyncio/", "selectors.py")),
)
OTHER = "other"
# The service's entry point: it and its callers sit under every sample of the consumer, so
# they never name a stage (else the loop's own work would be counted as the runtime's).
ENTRY = "run_main (common/service.py"
STARTUP = "start-up (imports)"
# Process name prefixes of the servers, for the CPU table.
SERVERS = {"PostgreSQL": ("postgres",), "Neo4j": ("java",), "RabbitMQ": ("beam", "erl")}


def stage_of(frames: list[str]) -> str:
    """The stage of one sample; ``frames`` run from the outermost to the innermost.

    The event loop (the last stage) is asked only when no other stage is on the stack;
    a sample taken while a module is imported is start-up, whatever that module is. The
    entry point and its callers (``tableinator/main.py``, ``run_main``) are left out: they
    are on every stack, and the loop's own work runs under them.
    """
    if any("importlib" in frame for frame in frames):
        return STARTUP
    entry = next((i for i in range(len(frames) - 1, -1, -1) if ENTRY in frames[i]), -1)
    frames = frames[entry + 1 :]
    for group in (STAGES[:-1], STAGES[-1:]):
        for frame in reversed(frames):
            for stage, marks in group:
                if any(mark in frame for mark in marks):
                    return stage
    return OTHER


def parse_raw(lines: Iterable[str]) -> dict[str, Counter[str]]:
    """py-spy's raw (collapsed) output -> samples per stage, per process ("consumer" for
    the process py-spy attached to, "decode workers" for its subprocesses)."""
    out: dict[str, Counter[str]] = {"consumer": Counter(), "decode workers": Counter()}
    for frames, count in _stacks(lines):
        # A spawned worker's stacks start in spawn_main (py-spy may first name the process).
        worker = any("spawn_main" in f or "_process_worker" in f for f in frames)
        own = frames[1:] if frames[0].startswith("process ") else frames
        out["decode workers" if worker else "consumer"][stage_of(own)] += count
    return out


def leaves(lines: Iterable[str], top: int = 12) -> list[tuple[str, int]]:
    """The innermost frames that collect the most samples (all processes)."""
    counts: Counter[str] = Counter()
    for frames, count in _stacks(lines):
        counts[frames[-1]] += count
    return counts.most_common(top)


def _stacks(lines: Iterable[str]) -> Iterator[tuple[list[str], int]]:
    """Each line ``frame;frame;... count`` of py-spy's raw output as (frames, count)."""
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if stack and count.isdigit():
            yield stack.split(";"), int(count)


def _cpu_by_role(consumer_pid: int) -> dict[str, float]:
    """CPU seconds so far of the consumer, its children and each server."""
    procs = harness.processes()
    out = {"consumer": 0.0, "decode workers": 0.0, **dict.fromkeys(SERVERS, 0.0)}
    for p in procs:
        if p.pid == consumer_pid:
            out["consumer"] += p.cpu_s
        elif p.ppid == consumer_pid:
            out["decode workers"] += p.cpu_s
        else:
            for role, prefixes in SERVERS.items():
                if p.name.startswith(prefixes):
                    out[role] += p.cpu_s
    return out


def _spy(raw: Path, rate: int, cpu: dict[str, Any]) -> Callable[[int], Callable[[], None]]:
    """An ``attach`` hook for :func:`bench.harness.run_consumer`: py-spy on the consumer."""
    spy = shutil.which("py-spy", path=str(harness.BIN)) or "py-spy"

    def attach(pid: int) -> Callable[[], None]:
        before = _cpu_by_role(pid)
        command = [spy, "record", "--pid", str(pid), "--subprocesses", "--format", "raw"]
        command += ["--rate", str(rate), "--output", str(raw), "--nonblocking"]
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

        def detach() -> None:
            after = _cpu_by_role(pid)
            cpu.update({k: round(after[k] - before.get(k, 0.0), 2) for k in after})
            proc.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
            _, err = proc.communicate(timeout=60)
            if proc.returncode not in (0, -signal.SIGINT) and not raw.exists():
                raise RuntimeError(f"py-spy failed: {err.decode(errors='replace')[-500:]}")

        return detach

    return attach


def profile(
    consumer: str, data_type: DataType, mode: str, n: int, rate: int, *, keep_raw: bool = False
) -> dict[str, Any]:
    records = harness.records_for(data_type, n)
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    label = f"{consumer}-{data_type.value}-{mode}"
    PROFILES.mkdir(parents=True, exist_ok=True)
    raw = PROFILES / f"{label}.raw.txt"
    cpu: dict[str, Any] = {}
    with store_for(consumer) as env:
        harness.prefill_sync(
            prefix, consumer, data_type, records, batch=500 if mode == "batch" else None
        )
        try:
            measured = harness.run_consumer(
                harness.service_command(consumer),
                {**env, "DISCOGS_EXCHANGE_PREFIX": prefix},
                data_type,
                len(records),
                log=LOGS / f"{label}-profiled.log",
                port=PORT,
                limit_s=1800,
                attach=_spy(raw, rate, cpu),
            )
        finally:
            asyncio.run(delete_queues(prefix, consumer))
    lines = raw.read_text(errors="replace").splitlines()
    if not keep_raw:
        raw.unlink()  # large; the summary below is what is kept
    return {
        "case": label,
        "records": len(records),
        "rate": measured.rate,
        "seconds": measured.seconds,
        "sample_rate_hz": rate,
        "cpu_s": cpu,
        "samples": {who: dict(c.most_common()) for who, c in parse_raw(lines).items()},
        "top_leaves": leaves(lines),
    }


def render(result: dict[str, Any]) -> str:
    """Markdown: CPU by process over the load, then samples by stage and the top frames."""
    seconds = result["seconds"] or 1.0
    n = result["records"]
    rows = [
        f"**{result['case']}**: {n:,} records at {result['rate']:,.0f}/s "
        f"({result['seconds']} s, py-spy at {result['sample_rate_hz']} Hz)",
        "",
        "| process | CPU s | cores | µs a record |",
        "|---|---:|---:|---:|",
    ]
    for who, cpu_s in result["cpu_s"].items():
        if cpu_s:
            rows.append(f"| {who} | {cpu_s:.2f} | {cpu_s / seconds:.2f} | {cpu_s / n * 1e6:.0f} |")
    rows += ["", "| stage | consumer process | decode workers |", "|---|---:|---:|"]
    samples = result["samples"]
    totals = {who: sum(c.values()) or 1 for who, c in samples.items()}
    stages = [STARTUP, *(s for s, _ in STAGES), OTHER]
    for stage in stages:
        cells = [samples[w].get(stage, 0) / totals[w] for w in ("consumer", "decode workers")]
        if any(cells):
            rows.append(f"| {stage} | {cells[0]:.0%} | {cells[1]:.0%} |")
    rows += ["", "| innermost frame | samples |", "|---|---:|"]
    rows += [f"| `{frame[:90]}` | {count} |" for frame, count in result["top_leaves"]]
    return "\n".join(rows) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--consumer", default="tableinator", choices=("tableinator", "graphinator"))
    parser.add_argument("--type", default="artists", choices=[t.value for t in DataType])
    parser.add_argument("--mode", default="single", choices=("single", "batch"))
    parser.add_argument("--n", type=int, default=80_000)
    parser.add_argument("--rate", type=int, default=250)
    parser.add_argument("--keep-raw", action="store_true", help="keep py-spy's raw stacks")
    args = parser.parse_args()
    LOGS.mkdir(parents=True, exist_ok=True)
    result = profile(
        args.consumer, DataType(args.type), args.mode, args.n, args.rate, keep_raw=args.keep_raw
    )
    text = render(result)
    (PROFILES / f"{result['case']}.json").write_text(json.dumps(result, indent=2))
    (PROFILES / f"{result['case']}.md").write_text(text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
