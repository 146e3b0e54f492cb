"""The extractor's memory on a small and a large dump: it must stay flat.

Builds a synthetic releases dump by repeating the sample's record elements with fresh ids
(gzip-compressed like the real ones), publishes it with `extractor publish` to a
throwaway exchange with a bound queue, and reads the process's peak RSS. Usage:
python -m bench.extractor_memory [--large N]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aio_pika

from bench.generate import SAMPLES
from bench.harness import AMQP_URL, BIN, _peak_rss_mb

_RELEASE = re.compile(rb"<release id=\"(\d+)\"(.*?)</release>", re.S)


def write_dump(path: Path, n: int) -> None:
    """A releases dump of ``n`` records made from the sample's, with ids 1..n."""
    raw = gzip.decompress((SAMPLES / "discogs_20200806_releases.xml.gz").read_bytes())
    bodies = [m.group(2) for m in _RELEASE.finditer(raw)]
    with gzip.open(path, "wb", compresslevel=1) as out:
        out.write(b"<releases>\n")
        for i in range(n):
            out.write(b'<release id="%d"%s</release>\n' % (i + 1, bodies[i % len(bodies)]))
        out.write(b"</releases>\n")


async def _queue(prefix: str, create: bool) -> None:
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        for t in ("artists", "labels", "masters", "releases"):
            name = f"{prefix}-{t}"
            if create:
                ex = await channel.declare_exchange(
                    name, aio_pika.ExchangeType.FANOUT, durable=True
                )
                queue = await channel.declare_queue(name, arguments={"x-queue-type": "classic"})
                await queue.bind(ex)
            else:
                await channel.queue_delete(name)
                await channel.exchange_delete(name)


def measure(path: Path) -> dict[str, float]:
    prefix = f"mem-{uuid.uuid4().hex[:8]}"
    asyncio.run(_queue(prefix, True))
    env = {**os.environ, "DISCOGS_EXCHANGE_PREFIX": prefix, "LOG_FORMAT": "json"}
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            [str(BIN / "extractor"), "publish", str(path)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        peak = 0.0
        while proc.poll() is None:
            peak = max(peak, _peak_rss_mb(proc.pid))
            time.sleep(0.05)
    finally:
        asyncio.run(_queue(prefix, False))
    return {
        "seconds": round(time.monotonic() - started, 1),
        "peak_rss_mb": round(peak, 1),
        "exit_code": proc.returncode,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=20000)
    args = parser.parse_args()
    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (args.small, args.large):
            path = Path(tmp) / f"n{n}" / "discogs_20260101_releases.xml.gz"
            path.parent.mkdir()
            write_dump(path, n)
            report[n] = {"gz_mb": round(path.stat().st_size / 1e6, 1), **measure(path)}
    sys.stdout.write(json.dumps(report, indent=2) + "\n")
    (Path(__file__).parent / "results" / "extractor_memory.json").write_text(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
