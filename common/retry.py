"""Backoff for waiting out outages: exponential, capped, with jitter so replicas spread out."""

from __future__ import annotations

import random

MAX_BACKOFF = 30.0


def backoff_delay(attempt: int, *, base: float = 0.2, cap: float = MAX_BACKOFF) -> float:
    """Seconds to wait before retry number ``attempt`` (1, 2, ...): ``base * 2**attempt``
    capped at ``cap``, times a random factor in [0.5, 1)."""
    grown: float = base * 2.0 ** min(attempt, 32)
    return min(cap, grown) * (0.5 + random.random() / 2)  # noqa: S311
