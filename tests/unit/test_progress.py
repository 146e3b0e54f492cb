"""Progress figures and the ETA: exact arithmetic on readings, with a clock set by hand."""

from __future__ import annotations

import pytest

from common.progress import Figures, Progress, Reading


class Clock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def reading(
    done: int,
    *,
    consumed: int | None = None,
    messages: int = 1,
    pending: int = 0,
    ready: int | None = 0,
    started: float | None = 100.0,
) -> Reading:
    return Reading(
        done=done,
        consumed=done + pending if consumed is None else consumed,
        messages=messages,
        pending=pending,
        ready=ready,
        started=started,
    )


def test_first_sample_measures_from_the_first_record() -> None:
    clock = Clock(130.0)
    figures = Progress(clock).sample("artists", reading(3000, messages=6, ready=10))
    assert figures.done == 3000
    assert figures.interval_rate == 100.0  # 3000 records in the 30 s since the first
    assert figures.overall_rate == 100.0
    assert figures.records_per_message == 500.0
    assert figures.remaining == 5000  # 10 messages of 500
    assert figures.eta_s == 50.0
    assert figures.active


def test_interval_rate_is_the_last_interval_and_overall_since_start() -> None:
    clock = Clock(130.0)
    progress = Progress(clock)
    progress.sample("a", reading(3000, messages=6, ready=20))
    clock.now = 160.0
    figures = progress.sample("a", reading(3600, consumed=4000, messages=8, pending=400, ready=4))
    assert figures.interval_rate == 20.0  # 600 records in 30 s
    assert figures.overall_rate == 60.0  # 3600 records in 60 s
    assert figures.records_per_message == 500.0  # 4000 records in 8 messages
    assert figures.remaining == 4 * 500 + 400  # ready messages plus records held
    assert figures.eta_s == 120.0  # at the recent rate, not the overall one


def test_keys_are_tracked_apart() -> None:
    clock = Clock(110.0)
    progress = Progress(clock)
    progress.sample("a", reading(100))
    progress.sample("b", reading(1000))
    clock.now = 120.0
    assert progress.sample("a", reading(200)).interval_rate == 10.0
    assert progress.sample("b", reading(1500)).interval_rate == 50.0


def test_an_empty_queue_and_nothing_held_is_done() -> None:
    figures = Progress(Clock(200.0)).sample("a", reading(1000, ready=0))
    assert figures.remaining == 0
    assert figures.eta_s == 0.0


def test_nothing_moving_while_work_waits_has_no_eta() -> None:
    clock = Clock(110.0)
    progress = Progress(clock)
    progress.sample("a", reading(100, messages=5, ready=5))
    clock.now = 140.0
    figures = progress.sample("a", reading(100, messages=5, ready=5))
    assert figures.interval_rate == 0.0
    assert figures.remaining == 100  # 5 messages of 20 records
    assert figures.eta_s is None
    assert figures.active  # work waits: worth a line that says so


def test_idle_after_the_load_is_not_active() -> None:
    clock = Clock(110.0)
    progress = Progress(clock)
    progress.sample("a", reading(100))
    clock.now = 140.0
    figures = progress.sample("a", reading(100))
    assert not figures.active
    assert figures.eta_s == 0.0


def test_unknown_depth_gives_no_remaining_and_no_eta() -> None:
    figures = Progress(Clock(110.0)).sample("a", reading(100, ready=None, pending=10))
    assert figures.remaining is None
    assert figures.eta_s is None


def test_ready_messages_before_any_was_received_have_unknown_size() -> None:
    figures = Progress(Clock(110.0)).sample(
        "a", reading(0, consumed=0, messages=0, ready=7, started=None)
    )
    assert figures.records_per_message is None
    assert figures.remaining is None
    assert figures.interval_rate == figures.overall_rate == 0.0
    assert figures.active


def test_no_time_elapsed_is_no_rate() -> None:
    figures = Progress(Clock(100.0)).sample("a", reading(50, started=100.0))
    assert figures.interval_rate == 0.0
    assert figures.overall_rate == 0.0


@pytest.mark.parametrize(
    ("figures", "expected"),
    [
        (
            Figures(1234, 41.26, 40.04, 3, 333.33, 1000, 24.24, True),
            {
                "done": 1234,
                "rate_interval": 41.3,
                "rate_overall": 40.0,
                "queue_ready": 3,
                "records_per_message": 333.3,
                "remaining": 1000,
                "eta_s": 24.0,
            },
        ),
        (
            Figures(0, 0.0, 0.0, None, None, None, None, False),
            {
                "done": 0,
                "rate_interval": 0.0,
                "rate_overall": 0.0,
                "queue_ready": None,
                "records_per_message": None,
                "remaining": None,
                "eta_s": None,
            },
        ),
    ],
)
def test_as_dict_rounds_for_reading(figures: Figures, expected: dict[str, object]) -> None:
    assert figures.as_dict() == expected
