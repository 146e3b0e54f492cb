"""The purge guards of monthly updates (pure)."""

from __future__ import annotations

import pytest

from common.purge import LoadFacts, decide


def facts(**over: object) -> LoadFacts:
    base: dict[str, object] = {
        "version": "20260301",
        "file_complete_seen": True,
        "dead_letters": 0,
        "seen": 990,
        "stored": 1000,
    }
    base.update(over)
    return LoadFacts(**base)  # type: ignore[arg-type]


def test_a_clean_run_may_purge_what_it_did_not_see() -> None:
    decision = decide(facts())
    assert decision.allowed
    assert decision.to_delete == 10


@pytest.mark.parametrize(
    ("over", "reason"),
    [
        ({"version": None}, "names no dump version"),
        ({"file_complete_seen": False}, "no file_complete"),
        ({"dead_letters": 3}, "dead-letter queue"),
        ({"seen": 0}, "no stored record"),
        ({"seen": 800}, "veto threshold"),
    ],
)
def test_each_guard_blocks_the_purge_with_its_reason(over: dict[str, object], reason: str) -> None:
    decision = decide(facts(**over))
    assert not decision.allowed
    assert reason in decision.reason


def test_the_veto_threshold_is_configurable() -> None:
    assert decide(facts(seen=800), veto_fraction=0.25).allowed
    assert not decide(facts(seen=800), veto_fraction=0.15).allowed


def test_exactly_at_the_threshold_is_allowed() -> None:
    assert decide(facts(seen=900, stored=1000)).allowed


def test_nothing_to_delete_is_allowed() -> None:
    decision = decide(facts(seen=1000, stored=1000))
    assert decision.allowed
    assert decision.to_delete == 0
