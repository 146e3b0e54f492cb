"""common.lifecycle.AsyncResource: open on entry, close on exit (also after an error)."""

from __future__ import annotations

import pytest

from common.lifecycle import AsyncResource


class Tracked(AsyncResource):
    def __init__(self) -> None:
        self.events: list[str] = []

    async def open(self) -> None:
        self.events.append("open")

    async def close(self) -> None:
        self.events.append("close")


async def test_entering_opens_and_leaving_closes() -> None:
    resource = Tracked()
    async with resource as entered:
        assert entered is resource
        assert resource.events == ["open"]
    assert resource.events == ["open", "close"]


async def test_an_error_inside_still_closes_and_propagates() -> None:
    resource = Tracked()
    with pytest.raises(RuntimeError, match="boom"):
        async with resource:
            raise RuntimeError("boom")
    assert resource.events == ["open", "close"]


async def test_a_resource_without_open_is_entered_and_closed() -> None:
    class Plain(AsyncResource):
        closed = 0

        async def close(self) -> None:
            self.closed += 1

    plain = Plain()
    async with plain as entered:
        assert entered is plain
        assert plain.closed == 0
    assert plain.closed == 1
