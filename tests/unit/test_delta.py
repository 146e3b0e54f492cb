"""Unit tests of common.delta: the version a store holds and when a delta applies. Pure."""

from __future__ import annotations

from dataclasses import replace

import pytest

from common.delta import DeltaFacts, HeldVersions, held_after_delta, held_after_full, refusal
from common.records import DataType

A, B, C = "20260301", "20260401", "20260501"
R = DataType.RELEASES


def test_a_delta_applies_only_over_its_base() -> None:
    assert refusal(A, A, B) is None
    assert refusal(C, A, B) == f"store holds {C}, delta from {A}: publish {B} in full"
    assert refusal(None, A, B) == f"store holds no version, delta from {A}: publish {B} in full"
    assert refusal(None, A, None) == (
        f"store holds no version, delta from {A}: publish the new version in full"
    )


def test_a_full_publish_is_held_only_when_its_purge_ran() -> None:
    assert held_after_full(B, purged=True) == B
    assert held_after_full(B, purged=False) is None
    assert held_after_full(None, purged=False) is None


WHOLE = DeltaFacts(version=B, base_version=A, held=A, file_complete_version=B, dead_letters=0)


def test_a_delta_applied_whole_over_its_base_is_held() -> None:
    assert held_after_delta(WHOLE) == B


def test_a_redelivered_extraction_complete_keeps_the_version_it_set() -> None:
    # Its ack was lost after the store was set to B: the store holds B, which stays.
    assert held_after_delta(replace(WHOLE, held=B)) == B
    # ... unless something of the delta waits in the dead-letter queue after all.
    assert held_after_delta(replace(WHOLE, held=B, dead_letters=1)) is None


@pytest.mark.parametrize(
    "change",
    [
        {"file_complete_version": None},  # the file was cut short
        {"file_complete_version": A},  # ... and an older file_complete is remembered
        {"dead_letters": 1},  # a message of it waits in the dead-letter queue
        {"held": None},  # refused: the store held no version (and nothing was sent)
        {"held": C},  # refused: the store held another version
        {"version": None, "file_complete_version": None},
    ],
)
def test_a_delta_not_applied_whole_leaves_no_version_held(change: dict[str, object]) -> None:
    assert held_after_delta(replace(WHOLE, **change)) is None  # type: ignore[arg-type]


async def test_held_versions_reads_once_and_again_after_a_refusal() -> None:
    store = {R: A}
    reads: list[DataType] = []

    async def read(data_type: DataType) -> str | None:
        reads.append(data_type)
        return store.get(data_type)

    held = HeldVersions(read)
    assert await held.refusal(R, A, B) is None
    assert await held.refusal(R, A, B) is None
    assert reads == [R]
    store[R] = B  # another replica finished the delta
    assert await held.refusal(R, B, C) is None
    assert reads == [R, R]
    assert await held.refusal(DataType.LABELS, A, B) == (
        f"store holds no version, delta from {A}: publish {B} in full"
    )
    held.forget(R)
    store[R] = C
    assert await held.refusal(R, B, C) is not None
    assert reads == [R, R, DataType.LABELS, R]
