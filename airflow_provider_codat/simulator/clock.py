"""Simulated time and Codat's timestamp formats.

The clock is real time plus an offset, so tests can jump ahead with :meth:`Clock.advance` while a demo
still sees time pass on its own. Every timestamp the simulator writes uses one format: seven fractional
digits and ``Z`` (``2026-11-21T10:00:00.1234560Z``), as Codat's ``modifiedDate`` values look.
"""

from __future__ import annotations

import functools
import re
import time
from datetime import UTC, datetime, timedelta

from airflow_provider_codat.timestamps import format_timestamp

_DATE_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?)?"
    r"(Z|[+-]\d{2}:?\d{2})?$"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Clock:
    """Real time plus an offset in seconds.

    :param offset: seconds added to the real clock.
    """

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp(), tz=UTC)

    def timestamp(self) -> float:
        """The simulated time in epoch seconds (the wall clock unless the clock was moved)."""
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


def fmt(moment: datetime) -> str:
    """Format an aware datetime the way the simulator writes every timestamp (7 fractional digits, Z).

    :param moment: an aware datetime (a naive one is read as UTC, never as the machine's local time).
    """
    # The provider's own UTC form (six digits), with Codat's seventh.
    return format_timestamp(moment).removesuffix("Z") + "0Z"


def fmt_local(moment: datetime) -> str:
    """A timestamp without zone, as some platforms return ``sourceModifiedDate`` and document dates.

    :param moment: a datetime, written as its own wall-clock time (the simulator passes UTC ones).
    """
    return moment.replace(tzinfo=None, microsecond=0).isoformat()


@functools.lru_cache(maxsize=262_144)
def date_ticks(value: str) -> int | None:
    """Parse an ISO 8601 date or date-time to 100-nanosecond ticks since 1970 (UTC), or ``None``.

    Ticks keep the seventh fractional digit, so a watermark read back from a record compares exactly.
    A value without zone is taken as UTC.

    :param value: the text to parse.
    """
    match = _DATE_RE.match(value)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        moment = datetime(
            int(year),
            month=int(month),
            day=int(day),
            hour=int(hour or 0),
            minute=int(minute or 0),
            second=int(second or 0),
            tzinfo=UTC,
        )
    except ValueError:
        return None
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        try:
            moment -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        except OverflowError:  # 0001-01-01T00:00+01:00 is before the first representable instant
            return None
    delta = moment - _EPOCH
    ticks = (delta.days * 86400 + delta.seconds) * 10_000_000
    if fraction:
        ticks += int(fraction.ljust(7, "0"))
    return ticks
