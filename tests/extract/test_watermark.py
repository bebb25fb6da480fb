from __future__ import annotations

from datetime import UTC, timedelta

import pytest

from airflow_provider_codat.errors import WatermarkError
from airflow_provider_codat.extract.watermark import (
    Cursor,
    VersionFilter,
    query_value,
)
from airflow_provider_codat.landing.records import instant_key, record_identity
from tests.moments import MOMENTS


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ("2026-11-21T10:00:00Z", "2026-11-21T10:00:00.0000000Z"),
        ("2026-11-21T11:00:00+01:00", "2026-11-21T10:00:00Z"),
        ("2026-11-21T10:00:00", "2026-11-21T10:00:00Z"),
        ("2026-11-21T10:00:00.1234567Z", "2026-11-21T10:00:00.12345670Z"),
    ],
)
def test_instant_key_equal_instants(left, right):
    assert instant_key(left) == instant_key(right)


def test_instant_key_keeps_the_seventh_digit_and_orders():
    values = ["2026-11-21T10:00:00.0000002Z", "2026-11-21T10:00:00.0000001Z", "2026-11-20T23:59:59.9Z"]
    assert sorted(values, key=instant_key) == [values[2], values[1], values[0]]
    assert instant_key(values[0]) != instant_key(values[1])


def test_instant_key_rejects_garbage():
    with pytest.raises(WatermarkError):
        instant_key("yesterday")


def test_query_value_keeps_codat_shape_and_normalises_others():
    assert query_value("2026-11-21T10:00:00.1234567Z") == "2026-11-21T10:00:00.1234567Z"
    assert query_value("2026-11-21T11:00:00+01:00") == "2026-11-21T10:00:00.0000000Z"
    # More digits than Codat sends: rounded down, so the read still includes the instant.
    assert query_value("2026-11-21T10:00:00.123456789Z") == "2026-11-21T10:00:00.1234567Z"


def test_record_identity_without_id_is_stable():
    assert record_identity({"id": 5}) == "5"
    assert record_identity({"a": 1, "b": 2}) == record_identity({"b": 2, "a": 1})
    assert record_identity({"a": 1}) != record_identity({"a": 2})


T1, T2, T3 = "2026-01-01T00:00:01.0000000Z", "2026-01-01T00:00:02.0000000Z", "2026-01-01T00:00:03.0000000Z"


def test_first_read_keeps_everything_and_tracks_ids_at_the_top():
    flt = VersionFilter(Cursor())
    records = [
        {"id": "a", "modifiedDate": T1},
        {"id": "b", "modifiedDate": T2},
        {"id": "c", "modifiedDate": T2},
    ]
    assert [flt.accept(r) for r in records] == [True, True, True]
    assert flt.result() == Cursor(T2, frozenset({"b", "c"}))


def test_versions_at_the_watermark_are_written_once():
    start = Cursor(T2, frozenset({"b", "c"}))
    flt = VersionFilter(start)
    records = [
        {"id": "b", "modifiedDate": T2},  # written by the previous run: skipped
        {"id": "d", "modifiedDate": T2},  # same instant, not written yet: kept
        {"id": "a", "modifiedDate": T1},  # older than the watermark: skipped
    ]
    assert [flt.accept(r) for r in records] == [False, True, False]
    assert flt.skipped == 2
    # Nothing newer: the watermark stays and its id set grows.
    assert flt.result() == Cursor(T2, frozenset({"b", "c", "d"}))


def test_watermark_moves_and_resets_the_id_set():
    flt = VersionFilter(Cursor(T2, frozenset({"b"})))
    assert flt.accept({"id": "b", "modifiedDate": T3})  # a new version of b
    assert flt.accept({"id": "e", "modifiedDate": T3})
    assert flt.result() == Cursor(T3, frozenset({"b", "e"}))


def test_records_without_modified_date_are_kept_and_move_nothing():
    flt = VersionFilter(Cursor(T2, frozenset({"b"})))
    assert flt.accept({"id": "x"})
    assert flt.undated == 1
    assert flt.result() == Cursor(T2, frozenset({"b"}))


def test_cursor_round_trip_and_corrupt_watermark():
    cursor = Cursor(T1, frozenset({"b", "a"}))
    assert Cursor.from_json(cursor.to_json()) == cursor
    assert cursor.to_json()["ids_at_watermark"] == ["a", "b"]
    with pytest.raises(WatermarkError):
        Cursor.from_json({"watermark": "not a date"})


@pytest.mark.parametrize("moment", MOMENTS)
def test_instant_keys_order_instants_around_every_moment(moment):
    utc = moment.astimezone(UTC)
    steps = [utc + timedelta(microseconds=step) for step in (-1_000_000, -1, 0, 1, 1_000_000)]
    codat = [f"{m:%Y-%m-%dT%H:%M:%S}.{m.microsecond:06d}0Z" for m in steps]
    assert sorted(codat, key=instant_key) == codat and len({instant_key(v) for v in codat}) == 5
    # The same instant in the moment's own offset (BST, EDT...) and without zone (UTC) is the same key.
    local = moment.isoformat(timespec="microseconds")
    assert instant_key(local) == instant_key(codat[2]) == instant_key(utc.replace(tzinfo=None).isoformat())
    assert query_value(local) == codat[2]


def test_the_repeated_hour_is_two_instants():
    # 01:30 happens twice on the autumn switch; the offset tells the two apart, an hour apart in order.
    london = ["2027-10-31T01:30:00+01:00", "2027-10-31T01:30:00+00:00"]
    new_york = ["2027-11-07T01:30:00-04:00", "2027-11-07T01:30:00-05:00"]
    for first, second in (london, new_york):
        assert instant_key(first) < instant_key(second)
    assert instant_key(london[1]) == instant_key("2027-10-31T01:30:00Z")
    assert instant_key(new_york[0]) == instant_key("2027-11-07T05:30:00.0000000Z")


@pytest.mark.parametrize(
    "value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:30:00-01:00", "2027-02-29T00:00Z"]
)
def test_instants_outside_the_calendar_are_refused(value):
    with pytest.raises(WatermarkError, match="Not a valid date-time"):
        instant_key(value)
