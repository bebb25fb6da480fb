"""Requests this process sent per minute, counted as the request budget hands out tokens (read by the health
page: the budget knows nothing of it).

A task cannot write to Airflow's metadata database (the Task SDK blocks it), so the counts travel in the
task's health report (:mod:`airflow_provider_codat.health.report`) and the API server folds them into ``codat_health_minute``. The counter
keeps at most a day of minutes, whatever happens to the reports.
"""

from __future__ import annotations

import threading
import time

#: A day of minutes: the requests chart's span (and the most a counter keeps).
KEEP_MINUTES = 24 * 60

_lock = threading.Lock()
_counts: dict[int, int] = {}


def count_request(now: float | None = None) -> None:
    """Count one request in its minute.

    :param now: epoch seconds (default: the clock).
    """
    minute = int((time.time() if now is None else now) // 60)
    with _lock:
        _counts[minute] = _counts.get(minute, 0) + 1
        if len(_counts) > KEEP_MINUTES:
            del _counts[min(_counts)]


def take_counts() -> dict[int, int]:
    """The counts since the last call (``{epoch minute: requests}``), and forget them."""
    with _lock:
        counts = dict(_counts)
        _counts.clear()
    return counts
