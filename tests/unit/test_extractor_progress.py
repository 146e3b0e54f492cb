"""The extractor's progress: a tqdm bar on a terminal, log lines with the ETA elsewhere."""

from __future__ import annotations

import io

import pytest
from structlog.testing import capture_logs

from extractor.progress import BarReporter, LogReporter, eta_seconds, reporter


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("elapsed", "fraction", "expected"),
    [(30.0, 0.25, 90.0), (10.0, 1.0, 0.0), (10.0, 0.0, None), (8.0, 0.5, 8.0)],
)
def test_eta_scales_the_time_so_far(
    elapsed: float, fraction: float, expected: float | None
) -> None:
    assert eta_seconds(elapsed, fraction) == expected


def test_log_lines_carry_bytes_read_and_the_eta() -> None:
    clock = Clock(100.0)
    report = LogReporter("labels.xml.gz", "records", interval=10, size=4000, clock=clock)
    with capture_logs() as logs:
        clock.now = 105.0
        report.update(500, 0.1)  # not yet due
        clock.now = 120.0
        report.update(2000, 0.25)
        clock.now = 180.0
        report.finish(8000)
    assert logs == [
        {
            "event": "progress",
            "log_level": "info",
            "file": "labels.xml.gz",
            "unit": "records",
            "done": 2000,
            "percent": 25.0,
            "bytes_read": 1000,
            "rate": 100,
            "elapsed_s": 20.0,
            "eta_s": 60,
        },
        {
            "event": "done",
            "log_level": "info",
            "file": "labels.xml.gz",
            "unit": "records",
            "done": 8000,
            "percent": 100.0,
            "bytes_read": 4000,
            "rate": 100,
            "elapsed_s": 80.0,
            "eta_s": 0,
        },
    ]


def test_log_lines_without_a_size_leave_bytes_out() -> None:
    clock = Clock(0.0)
    report = LogReporter("a.xml", "records", every=100, clock=clock)
    with capture_logs() as logs:
        clock.now = 1.0
        report.update(100, 0.5)
    assert "bytes_read" not in logs[0]
    assert logs[0]["eta_s"] == 1


def test_bar_shows_the_share_read_and_the_records_done() -> None:
    out = Terminal()
    report = BarReporter("artists.xml.gz", "records", out)
    report.update(1234, 0.5)
    report.finish(2500)
    text = out.getvalue()
    assert "artists.xml.gz" in text
    assert "100.0%" in text
    assert "2,500 records" in text


def test_bar_with_a_size_counts_bytes() -> None:
    out = Terminal()
    report = BarReporter("r.xml.gz", "records", out, size=2 * 1024 * 1024)
    report.update(10, 0.5)
    report.finish(20)
    assert "2.00M/2.00MB" in out.getvalue()


def test_a_terminal_gets_the_bar_and_anything_else_log_lines() -> None:
    bar = reporter("f", "records", stream=Terminal())
    assert isinstance(bar, BarReporter)
    bar.finish(0)
    assert isinstance(reporter("f", "records", stream=io.StringIO()), LogReporter)
