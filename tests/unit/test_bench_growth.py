"""Pure parts of the bench: the growth scenario's reading of a log, the steal share."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from bench import harness
from bench.run import steal_share
from bench.scenarios import batch_progress, window_rate


def _line(stamp: str, total: int) -> str:
    return json.dumps({"event": "Batch processed", "total": total, "timestamp": stamp})


def test_progress_reads_batch_lines_only(tmp_path: Path) -> None:
    log = tmp_path / "c.log"
    log.write_text(
        "\n".join(
            [
                json.dumps({"event": "consuming", "timestamp": "2026-12-01T10:00:00Z"}),
                _line("2026-12-01T10:00:01Z", 500),
                "not json, a traceback line",
                json.dumps({"event": "Batch processed", "timestamp": "2026-12-01T10:00:02Z"}),
                _line("2026-12-01T10:00:03.5Z", 1000),
            ]
        )
    )
    progress = batch_progress(log)
    assert [total for _, total in progress] == [500, 1000]
    assert progress[1][0] - progress[0][0] == 2.5


def test_window_rate_spans_the_first_points_past_each_mark() -> None:
    progress = [(0.0, 0), (1.0, 500), (2.0, 1000), (4.0, 1500), (6.0, 2000)]
    assert window_rate(progress, 0, 1000) == 500.0
    assert window_rate(progress, 1000, 2000) == 250.0
    assert window_rate(progress, 900, 1600) == 250.0  # from 1000 at 2 s to 2000 at 6 s


def test_window_rate_is_none_when_the_load_stopped_short() -> None:
    assert window_rate([(0.0, 0), (1.0, 500)], 0, 1000) is None
    assert window_rate([], 0, 10) is None
    assert window_rate([(1.0, 500), (1.0, 1000)], 500, 1000) is None


def test_steal_share_is_steal_over_all_time_passed() -> None:
    before = [100, 0, 50, 800, 10, 0, 5, 35]
    after = [160, 0, 70, 900, 10, 0, 5, 55]  # 200 jiffies passed, 20 of them stolen
    assert steal_share(before, after) == 0.1
    assert steal_share(before, before) is None


def test_the_harness_reads_latencies_and_the_start_from_the_same_lines(tmp_path: Path) -> None:
    log = tmp_path / "c.log"
    lines = [
        'a traceback line mentioning "Batch processed"',
        json.dumps({"event": "consuming", "timestamp": "2026-12-01T10:00:00.25Z"}),
        json.dumps({"event": "Batch processed", "duration_ms": 12.5, "total": 500}),
        json.dumps({"event": "Batch processed", "duration_ms": "n/a"}),
        json.dumps({"event": "other", "duration_ms": 99, "note": "Batch processed"}),
        json.dumps({"event": "Batch processed", "duration_ms": 3}),
    ]
    log.write_text("\n".join(lines))
    assert harness.batch_latencies(log) == [3.0, 12.5]
    assert harness.consuming_at(log) == datetime(2026, 12, 1, 10, 0, 0, 250000, UTC).timestamp()
    log.write_text(json.dumps({"event": "consuming", "timestamp": "not a time"}))
    assert harness.consuming_at(log) is None
