"""The records of one data type waiting to be written.

A record whose id is in a write that has not ended stays here until that write ends, so
two versions of one record never share a write nor race each other, and the later one is
always written last.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from common.tickets import Item


class TypeBuffer:
    """Pending items of one type in arrival order, and the ids of its unfinished writes."""

    def __init__(self) -> None:
        self._pending: list[Item] = []
        self._inflight: set[str] = set()

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def head(self) -> Item:
        """The oldest pending item."""
        return self._pending[0]

    def extend(self, items: Iterable[Item]) -> None:
        self._pending.extend(items)

    def take(self, cap: int) -> list[Item]:
        """Up to ``cap`` of the oldest items whose ids are not being written, as one write;
        their ids count as being written until :meth:`release`."""
        taken: list[Item] = []
        kept: list[Item] = []
        for item in self._pending:
            if len(taken) < cap and item.record.id not in self._inflight:
                taken.append(item)
                self._inflight.add(item.record.id)
            else:
                kept.append(item)
        self._pending = kept
        return taken

    def release(self, items: Iterable[Item]) -> None:
        """The write of ``items`` has ended: later versions of their ids may be taken."""
        self._inflight.difference_update(i.record.id for i in items)

    def oldest_writable(self) -> float:
        """Arrival of the oldest item that :meth:`take` would return; ``inf`` if none."""
        return next((i.added for i in self._pending if i.record.id not in self._inflight), math.inf)
