"""The collector settings every consumer and decoding process runs with (tune_gc)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from common.decoding import tune_gc


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_gc")
def test_collections_stay_on_but_rarer_and_start_up_objects_are_frozen() -> None:
    tune_gc()
    assert gc.isenabled()
    assert gc.get_threshold()[0] >= 10_000
    assert gc.get_freeze_count() > 0


@pytest.mark.usefixtures("restored_gc")
def test_cycles_are_still_collected_without_being_asked() -> None:
    """Garbage cycles go once enough objects were allocated: the collector runs by itself."""
    tune_gc()

    class Node:
        other: object = None

    a, b = Node(), Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    del a, b
    threshold = gc.get_threshold()[0]
    kept = [[] for _ in range(threshold + 1)]  # allocations that trigger a collection
    assert gone() is None
    assert len(kept) == threshold + 1
