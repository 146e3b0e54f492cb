"""When a monthly update may delete what the new dump no longer holds (pure rules).

After a type's ``extraction_complete`` a consumer removes the records the new version
did not carry, unless the run is in doubt: the file was cut short, records wait in the
dead-letter queue (the dump still holds them), or far more would go than a month changes
(a truncated or wrong dump). Each refusal gives its reason.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_VETO_FRACTION = 0.10


@dataclass(frozen=True, slots=True)
class LoadFacts:
    """What the store and the broker know about one type's load of ``version``."""

    version: str | None
    file_complete_seen: bool
    dead_letters: int
    seen: int  # records stamped with ``version``
    stored: int  # records in the store now, before any purge


@dataclass(frozen=True, slots=True)
class PurgeDecision:
    allowed: bool
    reason: str
    to_delete: int


def decide(facts: LoadFacts, *, veto_fraction: float = DEFAULT_VETO_FRACTION) -> PurgeDecision:
    """Whether the records not seen in ``facts.version`` may be deleted, and why (not)."""
    to_delete = max(facts.stored - facts.seen, 0)
    if facts.version is None:
        return PurgeDecision(False, "extraction_complete names no dump version", to_delete)
    if not facts.file_complete_seen:
        return PurgeDecision(
            False, f"no file_complete arrived for version {facts.version}", to_delete
        )
    if facts.dead_letters > 0:
        return PurgeDecision(
            False,
            f"{facts.dead_letters} dead-lettered messages of this type wait in the "
            "dead-letter queue; inspect and clear it, then resend extraction_complete",
            to_delete,
        )
    if facts.seen == 0:
        return PurgeDecision(False, f"no stored record is stamped with {facts.version}", to_delete)
    if facts.stored and to_delete > veto_fraction * facts.stored:
        return PurgeDecision(
            False,
            f"{to_delete} of {facts.stored} stored records would be deleted, more than the "
            f"veto threshold of {veto_fraction:.0%}",
            to_delete,
        )
    return PurgeDecision(True, "ok", to_delete)
