"""Records/s over time per consumer and type, drawn from the consumers' ``Batch processed``
log lines (JSON, one per committed batch) into a PNG.

    python -m bench.chart LOG_FOLDER OUT.png
"""

from __future__ import annotations

import sys
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import matplotlib as mpl
import orjson

mpl.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # the backend is chosen first

BUCKET_S = 5.0


def series(logs: Path) -> dict[str, list[tuple[float, float]]]:
    """``{"graphinator releases": [(seconds since the first batch, records/s), ...]}``,
    records summed over buckets of ``BUCKET_S`` seconds."""
    events: list[tuple[float, str, int]] = []
    for path in sorted(logs.glob("*.log")):
        for line in path.read_bytes().splitlines():
            if not line.startswith(b"{"):
                continue
            event = orjson.loads(line)
            if event.get("event") != "Batch processed":
                continue
            at = datetime.fromisoformat(event["timestamp"]).timestamp()
            key = f"{event['service']} {event['data_type']}"
            events.append((at, key, int(event["batch_size"])))
    if not events:
        return {}
    start = min(at for at, _, _ in events)
    buckets: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for at, key, size in events:
        buckets[key][int((at - start) // BUCKET_S)] += size
    out = {}
    for key, counts in sorted(buckets.items()):
        span = range(min(counts), max(counts) + 1)
        out[key] = [((i + 0.5) * BUCKET_S, counts.get(i, 0) / BUCKET_S) for i in span]
    return out


def draw(logs: Path, out: Path) -> None:
    data = series(logs)
    fig, axes = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    for ax, service in zip(axes, ("graphinator", "tableinator"), strict=True):
        for key, points in data.items():
            if key.startswith(service):
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, ".-", label=key.split(" ", 1)[1], linewidth=1.2, markersize=3)
        ax.set_title(f"{service}: records/s committed ({BUCKET_S:g} s buckets)")
        ax.set_ylabel("records/s")
        ax.grid(alpha=0.3)
        if ax.get_lines():
            ax.legend(loc="upper right")
    axes[-1].set_xlabel("seconds since the first committed batch")
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)


if __name__ == "__main__":
    draw(Path(sys.argv[1]), Path(sys.argv[2]))
