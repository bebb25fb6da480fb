"""A company's state against the schedule of the DAG that syncs it: On time, Late or Error.

=========  ========================================================================================
Error      the latest outcome of one of its types failed, or one of its connections is ``Deauthorized``
           or ``Unlinked`` (broken: Codat cannot read it until the company links again)
Late       a type's last landing is older than :data:`SLACK` × the DAG's schedule period +
           :data:`GRACE` (a daily DAG: 36 h 15 min), or it never landed
On time    otherwise
=========  ========================================================================================

The states are worked out in SQL over the list's rows (:mod:`.query`); this module gives the ages they compare
against. The period comes from the DAG's schedule as Airflow lists it (``timetable_summary``): a cron expression or
preset, or a ``timedelta``. A DAG run by assets or by hand has no period: :data:`UNSCHEDULED_PERIOD` stands in.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from functools import lru_cache

ON_TIME, LATE, ERROR = "On time", "Late", "Error"
STATES = (ERROR, LATE, ON_TIME)
SLACK = 1.5
GRACE = timedelta(minutes=15)
UNSCHEDULED_PERIOD = timedelta(days=1)
BROKEN_CONNECTIONS = frozenset({"Deauthorized", "Unlinked"})
_PRESETS = {
    "@hourly": timedelta(hours=1),
    "@daily": timedelta(days=1),
    "@weekly": timedelta(weeks=1),
    "@monthly": timedelta(days=31),
    "@quarterly": timedelta(days=92),
    "@yearly": timedelta(days=366),
    "@annually": timedelta(days=366),
}
_DELTA = re.compile(r"(?:(\d+) days?, )?(\d+):(\d\d):(\d\d)")


@lru_cache(maxsize=1024)
def schedule_period(summary: str | None) -> timedelta:
    """The time between two runs of a DAG whose schedule Airflow summarises as ``summary``."""
    text = (summary or "").strip()
    if text in _PRESETS:
        return _PRESETS[text]
    delta = _DELTA.fullmatch(text)
    if delta:
        days, hours, minutes, seconds = (int(part or 0) for part in delta.groups())
        return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds) or UNSCHEDULED_PERIOD
    if len(text.split()) in (5, 6):
        try:
            return _longest_gap(text)
        except (ValueError, KeyError, ImportError):
            return UNSCHEDULED_PERIOD
    return UNSCHEDULED_PERIOD


def _longest_gap(expression: str) -> timedelta:
    """The longest of a few gaps between runs: ``0 9 * * 1-5`` waits a weekend."""
    from croniter import croniter

    runs = croniter(expression, datetime(2026, 1, 5))
    moments = [runs.get_next(datetime) for _ in range(8)]
    return max(later - earlier for earlier, later in zip(moments, moments[1:], strict=False))


def allowed_age(summary: str | None) -> timedelta:
    """How old a landing may be before its company is Late."""
    return schedule_period(summary) * SLACK + GRACE
