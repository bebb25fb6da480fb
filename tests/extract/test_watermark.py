from __future__ import annotations

import pytest

from airflow_provider_codat.extract.watermark import (
    Cursor,
    VersionFilter,
    WatermarkError,
    instant_key,
    query_value,
    record_identity,
)


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
