"""A worker's CPU per record alone against two at once: what two busy cores cost each one.

Each round runs one process that encodes the sample releases (parse, normalise, pack: a
worker's whole job, no hand-over) for ``--seconds``, then two such processes side by
side, and takes each one's CPU seconds per record (``os.times`` in the process). With
nothing shared between them, a higher figure for the pair is the machine's: two cores
busy at once run the same code slower (shared caches and memory, or two virtual CPUs on
one physical core). Prints each round and the median ratio pair / alone. Usage:
python -m bench.extractor_contention [--rounds N] [--seconds S]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from extractor.cutting import cut
from extractor.packing import Packing, Where, pack
from extractor.xmlparse import DumpFile, parse_chunk

SAMPLE = Path(__file__).resolve().parents[1] / "data/samples/discogs_20200806_releases.xml.gz"


def encode_for(seconds: float) -> float:
    """Encode the sample's chunks again and again for ``seconds``; CPU µs a record."""
    dump = DumpFile.from_path(SAMPLE)
    chunks = list(cut(dump, max_records=500, max_bytes=1 << 30))
    before, started, records = os.times(), time.monotonic(), 0
    while time.monotonic() - started < seconds:
        for chunk in chunks:
            encoded = list(parse_chunk(dump, chunk))
            pack(dump.data_type, dump.version, encoded, Packing(), Where(str(dump.path)))
            records += len(encoded)
    after = os.times()
    cpu = after.user - before.user + after.system - before.system
    return cpu / records * 1e6


def _spawn(seconds: float) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "bench.extractor_contention", "--child", str(seconds)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True)


def _round(seconds: float) -> dict[str, float]:
    alone = float(_spawn(seconds).communicate()[0])
    pair = [_spawn(seconds), _spawn(seconds)]
    together = [float(p.communicate()[0]) for p in pair]
    return {
        "load_1min": round(os.getloadavg()[0], 2),
        "alone_us": round(alone, 1),
        "pair_us": round(statistics.mean(together), 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--child", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        sys.stdout.write(f"{encode_for(args.child)}\n")
        return 0
    rounds = []
    for _ in range(args.rounds):
        rounds.append(_round(args.seconds))
        sys.stdout.write(json.dumps(rounds[-1]) + "\n")
    ratio = statistics.median(r["pair_us"] / r["alone_us"] for r in rounds)
    sys.stdout.write(json.dumps({"median_pair_over_alone": round(ratio, 3)}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
