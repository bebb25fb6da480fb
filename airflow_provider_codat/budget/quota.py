"""Codat's daily quota as a response reported it, and the name a budget's key takes in its store."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Quota:
    """Codat's daily quota as one response reported it.

    :param limit: ``X-Rate-Limit-Limit`` (``None`` when absent).
    :param remaining: ``X-Rate-Limit-Remaining``.
    :param resets_at: epoch seconds of ``X-Rate-Limit-Reset`` (``None`` when absent or unreadable).
    :param observed_at: epoch seconds when the response came.
    """

    limit: int | None
    remaining: int
    resets_at: float | None
    observed_at: float

    def current(self, now: float) -> bool:
        """Whether it still describes the quota: its reset has not passed yet."""
        return self.resets_at is None or now < self.resets_at


def digest(key: str) -> str:
    """A short fixed-length name for the budget ``key`` in its store."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]
