"""The clock moments the date tests pin with time-machine: year and month ends, leap days, and the DST switches.

A test takes them through the ``clock_at`` fixture (``tests/conftest.py``)::

    @pytest.mark.parametrize("clock_at", MOMENTS, indirect=True)
    def test_something(clock_at): ...

Moments in a local zone are given as aware datetimes of that zone, so time-machine also sets the process's
local zone (``TZ``) to it while the test runs: code that reads a naive datetime as local time shows up there.
The DST moments stand on either side of the switch, and on both sides of a repeated hour (``fold``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")


def _param(moment: datetime, label: str):
    return pytest.param(moment, id=label)


MOMENTS = [
    _param(datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC), "2026-12-31T23:59:59Z"),
    _param(datetime(2027, 1, 1, tzinfo=UTC), "2027-01-01T00:00Z"),
    # The 31st before a 28-day month: "one month on" must not land on 31 February.
    _param(datetime(2027, 1, 31, 12, tzinfo=UTC), "2027-01-31T12:00Z"),
    _param(datetime(2028, 2, 29, 12, tzinfo=UTC), "2028-02-29T12:00Z"),
    # Still 31 January in New York, already 1 February in UTC: Codat's months are UTC months.
    _param(datetime(2027, 1, 31, 20, 30, tzinfo=NEW_YORK), "NewYork-2027-01-31T20:30EST"),
    # Before the year the DAGs' start date used to be (2026): nothing may be dated in the future of it.
    _param(datetime(2024, 2, 29, 12, tzinfo=UTC), "2024-02-29T12:00Z"),
    # Europe/London, spring: 01:00 GMT becomes 02:00 BST (01:xx local does not exist).
    _param(datetime(2027, 3, 28, 0, 59, 59, tzinfo=LONDON), "London-2027-03-28T00:59:59GMT"),
    _param(datetime(2027, 3, 28, 2, 0, 0, tzinfo=LONDON), "London-2027-03-28T02:00:00BST"),
    # Europe/London, autumn: 02:00 BST becomes 01:00 GMT (01:xx local happens twice).
    _param(datetime(2027, 10, 31, 1, 30, tzinfo=LONDON), "London-2027-10-31T01:30BST"),
    _param(datetime(2027, 10, 31, 1, 30, tzinfo=LONDON, fold=1), "London-2027-10-31T01:30GMT"),
    # America/New_York, spring: 02:00 EST becomes 03:00 EDT.
    _param(datetime(2027, 3, 14, 1, 59, 59, tzinfo=NEW_YORK), "NewYork-2027-03-14T01:59:59EST"),
    _param(datetime(2027, 3, 14, 3, 0, 0, tzinfo=NEW_YORK), "NewYork-2027-03-14T03:00:00EDT"),
    # America/New_York, autumn: 02:00 EDT becomes 01:00 EST.
    _param(datetime(2027, 11, 7, 1, 30, tzinfo=NEW_YORK), "NewYork-2027-11-07T01:30EDT"),
    _param(datetime(2027, 11, 7, 1, 30, tzinfo=NEW_YORK, fold=1), "NewYork-2027-11-07T01:30EST"),
]


def month_index(moment: datetime) -> int:
    """Months since year 0 of ``moment``'s UTC month: plain integers the tests count months with.

    :param moment: an aware datetime.
    """
    utc = moment.astimezone(UTC)
    return utc.year * 12 + utc.month - 1


def month_of(index: int) -> tuple[int, int]:
    """(year, month) of a :func:`month_index`.

    :param index: months since year 0.
    """
    year, month = divmod(index, 12)
    return year, month + 1
