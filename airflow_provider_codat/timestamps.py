"""Codat's timestamps read and written: a leaf module, so that the hook and the sync package can both use it."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any


def as_utc(moment: datetime) -> datetime:
    """The same instant in UTC; a naive datetime is taken as UTC, never as this machine's local time.

    :param moment: an aware or naive datetime.
    """
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_timestamp(value: Any) -> datetime | None:
    """An aware UTC datetime from Codat's timestamps (seven fractional digits, ``Z``), ISO strings, or datetimes.

    A value without zone is taken as UTC; ``None``/empty/unparseable gives ``None``.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return as_utc(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, OSError, ValueError):  # NaN, or epoch seconds beyond year 9999
            return None
    if not isinstance(value, str) or len(value) > 64:
        return None
    # Python accepts at most six fractional digits; Codat writes seven.
    text = re.sub(r"(\.\d{6})\d+", r"\1", value.strip())
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return as_utc(moment)
    except (ValueError, OverflowError):  # OverflowError: an offset that moves year 1 or 9999 out of range
        return None


def format_timestamp(moment: datetime) -> str:
    """ISO 8601 UTC with ``Z`` (microseconds kept), the form tickets and trigger kwargs carry.

    :param moment: the instant; a naive datetime is read as UTC, as :func:`parse_timestamp` reads one (never as
        the machine's local time, which would move it by the zone's offset and by DST).
    """
    moment = as_utc(moment)
    # isoformat, unlike strftime("%Y"), always writes four-digit years.
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
