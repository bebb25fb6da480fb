"""What the receiver remembers for a while (delivery ids, the signing secret's verifier): a time to live on a
monotonic clock, which tests replace, and a lock, since deliveries are answered on several threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Expiring:
    """Base of the receiver's memories: ``ttl`` seconds on ``clock``, guarded by ``_lock``.

    :param ttl: seconds a remembered thing is used before it is forgotten (or looked up again).
    :param clock: monotonic seconds (for tests).
    """

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()

    def _fresh(self, since: float | None, now: float | None = None) -> bool:
        """Whether something remembered at ``since`` (``None``: never) is younger than ``ttl`` at ``now``
        (default: the clock's reading)."""
        if since is None:
            return False
        return (self._clock() if now is None else now) - since < self.ttl
