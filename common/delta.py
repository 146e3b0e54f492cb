"""Which dump version a store fully holds per type, and when a delta may apply (pure rules).

A delta (docs/wire-format.md, "Delta updates") carries only what changed since its
``base_version``: applied over any other state it would leave the store matching no
version at all. So each store keeps, per type, the version it fully holds, and a delta
message over any other is refused whole (dead-lettered with the reason).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from common.records import DataType


def refusal(held: str | None, base_version: str, version: str | None) -> str | None:
    """Why a delta from ``base_version`` to ``version`` may not apply; None if it may."""
    if held == base_version:
        return None
    return (
        f"store holds {held or 'no version'}, delta from {base_version}: "
        f"publish {version or 'the new version'} in full"
    )


def held_after_full(version: str | None, *, purged: bool) -> str | None:
    """The version held after a full publish of ``version``: it, if the purge ran (the
    store is then exactly that version), else none."""
    return version if purged else None


@dataclass(frozen=True, slots=True)
class DeltaFacts:
    """What the store and the broker know when a delta's ``extraction_complete`` arrives."""

    version: str | None  # the new version the delta leads to
    base_version: str  # the version it was computed from
    held: str | None  # the version the store held until now
    file_complete_version: str | None  # of the type's last file_complete
    dead_letters: int  # messages of the type waiting in the dead-letter queue


def held_after_delta(facts: DeltaFacts) -> str | None:
    """The new version, when every message of the delta was applied over its base: the
    file arrived whole, nothing of it waits in the dead-letter queue, and the store held
    the base (a delta with no message to refuse would otherwise pass over any store) or
    holds the new version already (this ``extraction_complete`` redelivered: its ack was
    lost with the connection after the store was set). Else none: the store is not
    exactly any version."""
    whole = facts.file_complete_version == facts.version and facts.dead_letters == 0
    if facts.version is None or not whole or facts.held not in (facts.base_version, facts.version):
        return None
    return facts.version


_UNKNOWN = "unknown"  # not a dump version (those are YYYYMMDD)


class HeldVersions:
    """The version each type's store holds, read through ``read`` when first needed (not a
    round trip per message) and again after a refusal (another replica may have moved it);
    :meth:`forget` after the store changed it."""

    def __init__(self, read: Callable[[DataType], Awaitable[str | None]]) -> None:
        self._read = read
        self._known: dict[DataType, str | None] = {}

    async def refusal(
        self, data_type: DataType, base_version: str, version: str | None
    ) -> str | None:
        """Why a delta message may not apply to the store (see :func:`refusal`)."""
        known = self._known.get(data_type, _UNKNOWN)
        if known is not _UNKNOWN and refusal(known, base_version, version) is None:
            return None
        self._known[data_type] = await self._read(data_type)
        return refusal(self._known[data_type], base_version, version)

    def forget(self, data_type: DataType) -> None:
        self._known.pop(data_type, None)
