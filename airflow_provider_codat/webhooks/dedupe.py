"""Remember the ``webhook-id`` values this process stored recently: a repeat is answered without a database
round trip. Only ids already durably stored go in (the database's constraint decides the rest)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from airflow_provider_codat.webhooks.expiry import Expiring

# Codat retries a message for about 28 hours; every attempt carries the same webhook-id.
DEFAULT_TTL_SECONDS = 30 * 3600
DEFAULT_MAX_IDS = 100_000


class RecentIds(Expiring):
    """A bounded, thread-safe set of ids that forgets them after ``ttl`` seconds (oldest first when full).

    :param ttl: seconds an id is remembered.
    :param max_ids: ids kept at most; the oldest go first.
    :param clock: monotonic seconds (for tests).
    """

    def __init__(
        self,
        ttl: float = DEFAULT_TTL_SECONDS,
        max_ids: int = DEFAULT_MAX_IDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(ttl, clock)
        self.max_ids = max_ids
        self._seen: OrderedDict[str, float] = OrderedDict()

    def add(self, webhook_id: str) -> bool:
        """Remember ``webhook_id``; ``False`` when it was already remembered (a duplicate)."""
        now = self._clock()
        with self._lock:
            self._expire(now)
            if webhook_id in self._seen:
                return False
            self._seen[webhook_id] = now
            while len(self._seen) > self.max_ids:
                self._seen.popitem(last=False)
            return True

    def __contains__(self, webhook_id: object) -> bool:
        """Whether ``webhook_id`` is remembered (and not expired)."""
        with self._lock:
            self._expire(self._clock())
            return webhook_id in self._seen

    def __len__(self) -> int:
        return len(self._seen)

    def _expire(self, now: float) -> None:
        while self._seen:
            oldest, added = next(iter(self._seen.items()))
            if self._fresh(added, now):
                return
            del self._seen[oldest]
