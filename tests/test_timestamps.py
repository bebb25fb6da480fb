"""Codat's timestamps read and written (``timestamps.py``, tickets) on every date the clock may show.

Arithmetic and comparisons here are done on UTC datetimes: on a ``ZoneInfo`` datetime Python adds wall-clock
time (02:00 BST minus a second is the non-existent 01:59:59), and a moment in a repeated hour never equals a
datetime of another zone (PEP 495).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from airflow_provider_codat.sync import decision
from airflow_provider_codat.sync.ticket import iso_utc, utcnow_iso
from airflow_provider_codat.timestamps import format_timestamp, parse_timestamp
from tests.moments import MOMENTS


def _codat(moment: datetime) -> str:
    """``moment`` as Codat writes it (seven fractional digits, ``Z``), built independently of the package."""
    utc = moment.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond:06d}0Z"


@pytest.mark.parametrize("clock_at", MOMENTS, indirect=True)
def test_now_is_written_and_read_back_as_the_same_utc_instant(clock_at):
    utc = clock_at.astimezone(UTC)
    assert utcnow_iso() == f"{utc:%Y-%m-%dT%H:%M:%S}.000000Z"
    assert parse_timestamp(utcnow_iso()) == utc
    assert parse_timestamp(time.time()) == utc
    assert parse_timestamp(_codat(clock_at)) == utc
    # The same instant written in the moment's own zone (offset and all) reads back the same.
    assert parse_timestamp(clock_at.isoformat()) == utc
    assert iso_utc(clock_at.isoformat()) == utcnow_iso()


@pytest.mark.parametrize("clock_at", MOMENTS, indirect=True)
def test_naive_datetimes_are_utc_whatever_the_local_zone(clock_at):
    # time-machine set TZ to the moment's zone: a naive datetime read as local time would move by its offset
    # (one hour more or less either side of the DST switch).
    utc = clock_at.astimezone(UTC)
    naive = utc.replace(tzinfo=None)
    assert format_timestamp(naive) == format_timestamp(clock_at) == utcnow_iso()
    assert parse_timestamp(naive) == utc
    assert parse_timestamp(naive.isoformat()) == utc


@pytest.mark.parametrize("clock_at", MOMENTS, indirect=True)
def test_a_second_apart_stays_a_second_apart(clock_at):
    # Over midnight, the month and year end, the leap day and the DST hour: instants, not wall clocks.
    utc = clock_at.astimezone(UTC)
    texts = [format_timestamp(utc + timedelta(seconds=step)) for step in (-1, 0, 1)]
    assert texts == sorted(texts) and len(set(texts)) == 3
    assert parse_timestamp(texts[2]) - parse_timestamp(texts[0]) == timedelta(seconds=2)


@pytest.mark.parametrize("clock_at", MOMENTS, indirect=True)
def test_synced_after_compares_as_an_instant(clock_at):
    synced = {"currentStatus": "Complete", "latestSyncId": "d", "latestSuccessfulSyncId": "d"}
    utc = clock_at.astimezone(UTC)
    just_after = {**synced, "lastSuccessfulSync": _codat(utc + timedelta(microseconds=1))}
    just_before = {**synced, "lastSuccessfulSync": _codat(utc - timedelta(microseconds=1))}
    # The moment in its own zone (a fold or just past a gap), in UTC, and naive (UTC).
    for synced_after in (clock_at, utc, utc.replace(tzinfo=None)):
        assert decision.decide_since(just_after, synced_after).state is decision.State.DONE
        assert decision.decide_since(just_before, synced_after).state is decision.State.PENDING


@pytest.mark.parametrize(
    "value",
    [
        "0001-01-01T00:00:00+01:00",  # before the first representable instant
        "9999-12-31T23:59:59-01:00",  # after the last
        1e20,
        float("nan"),
        "2027-02-29T00:00:00Z",  # not a leap year
        "2028-02-30",
    ],
)
def test_unrepresentable_or_impossible_dates_read_as_none(value):
    assert parse_timestamp(value) is None


def test_four_digit_years_are_kept():
    assert format_timestamp(datetime(999, 1, 2, tzinfo=UTC)) == "0999-01-02T00:00:00.000000Z"
    assert parse_timestamp("0999-01-02T00:00:00.000000Z") == datetime(999, 1, 2, tzinfo=UTC)
