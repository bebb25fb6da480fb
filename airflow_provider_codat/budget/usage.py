"""Requests this process sent per minute, counted as the request budget hands out tokens (read by the health
page: the budget knows nothing of it).

A task cannot write to Airflow's metadata database (the Task SDK blocks it), so the counts travel in the
task's health report (:mod:`airflow_provider_codat.health.report`) and the API server folds them into ``codat_health_minute``. The counter
keeps at most a day of minutes, whatever happens to the reports.

A deferred wait's requests are sent by the triggerer, where no report is pushed: the trigger counts its own
apart (:func:`counting_apart`), hands them over in its event (:data:`EVENT_KEY`), and the task resuming on a
worker adds them to its counter (:func:`add_counts`), so they reach the page with the task's report.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar

#: A day of minutes: the requests chart's span (and the most a counter keeps).
KEEP_MINUTES = 24 * 60

_lock = threading.Lock()
_counts: dict[int, int] = {}
_apart: ContextVar[dict[int, int] | None] = ContextVar("codat_requests_apart", default=None)
#: The key of a trigger's event that carries its requests per minute (``{"epoch minute": requests}``).
EVENT_KEY = "codat_requests"  # also the resuming methods' parameter (operators/company.py)


def count_request(now: float | None = None) -> None:
    """Count one request in its minute.

    :param now: epoch seconds (default: the clock).
    """
    minute = int((time.time() if now is None else now) // 60)
    apart = _apart.get()
    counts = _counts if apart is None else apart
    with _lock:
        counts[minute] = counts.get(minute, 0) + 1
        if len(counts) > KEEP_MINUTES:
            del counts[min(counts)]


@contextmanager
def counting_apart() -> Iterator[dict[int, int]]:
    """Count this context's requests (a trigger's: its threads run in a copy of the context) in the dict
    yielded, not in the process's counter."""
    counts: dict[int, int] = {}
    token = _apart.set(counts)
    try:
        yield counts
    finally:
        _apart.reset(token)


def add_counts(counts: Mapping[str | int, int] | None) -> None:
    """Add counts taken elsewhere (a trigger's event's :data:`EVENT_KEY`) to this process's counter."""
    with _lock:
        for minute, n in (counts or {}).items():
            _counts[int(minute)] = _counts.get(int(minute), 0) + int(n)
        while len(_counts) > KEEP_MINUTES:
            del _counts[min(_counts)]


def take_counts() -> dict[int, int]:
    """The counts since the last call (``{epoch minute: requests}``), and forget them."""
    with _lock:
        counts = dict(_counts)
        _counts.clear()
    return counts
