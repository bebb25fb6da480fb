"""The query helper formats dates and values correctly and refuses what would break the query."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from airflow_provider_codat.hooks.codat import CodatValidationError
from airflow_provider_codat.query import all_of, any_of, condition, format_value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (dt.datetime(2024, 5, 1, 10, 0, 0, tzinfo=dt.UTC), "2024-05-01T10:00:00.0000000Z"),
        (dt.datetime(2024, 5, 1, 12, 30, 5, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2))),
         "2024-05-01T10:30:05.1234560Z"),
        (dt.date(2024, 5, 1), "2024-05-01"),
        (True, "true"),
        (False, "false"),
        (42, "42"),
        (1.5, "1.5"),
        (Decimal("10.25"), "10.25"),
        ("Acme Ltd", "Acme Ltd"),
    ],
)  # fmt: skip
def test_format_value(value, expected):
    assert format_value(value) == expected


def test_pendulum_datetimes_are_converted_to_utc():
    import pendulum

    assert (
        format_value(pendulum.datetime(2024, 1, 1, 1, tz="Europe/London")) == "2024-01-01T01:00:00.0000000Z"
    )


@pytest.mark.parametrize(
    "bad",
    [dt.datetime(2024, 5, 1), "a&&b", "a||b", "{x", "y}", "", "a\nb", float("nan"), None, [1], {"a": 1}],
)
def test_format_value_refuses(bad):
    with pytest.raises(CodatValidationError):
        format_value(bad)


def test_condition_builds_field_op_value():
    since = dt.datetime(2024, 5, 1, 10, tzinfo=dt.UTC)
    assert condition("modifiedDate", ">=", since) == "modifiedDate>=2024-05-01T10:00:00.0000000Z"
    assert condition("metadata.isDeleted", "!=", True) == "metadata.isDeleted!=true"
    assert condition("name", "~", "Acme") == "name~Acme"
    assert condition("modifiedDate", ">", "2024-05-01T10:00:00Z") == "modifiedDate>2024-05-01T10:00:00Z"
    assert condition("amountDue", "<=", 100) == "amountDue<=100"


@pytest.mark.parametrize(
    ("field", "op", "value"),
    [
        ("modified Date", "=", 1),
        ("a=1&&b", "=", 1),
        ("", "=", 1),
        ("a.", "=", 1),
        ("a", "==", 1),
        ("a", "&&", 1),
        ("a", "~", 5),
        ("a", ">", "Acme"),
        ("a", ">=", True),
        ("a", "=", "x||y=1"),
    ],
)
def test_condition_refuses(field, op, value):
    with pytest.raises(CodatValidationError):
        condition(field, op, value)


def test_all_of_and_any_of_group_compound_parts():
    a, b, c = "a=1", "b=2", "c=3"
    assert all_of(a, b) == "a=1&&b=2"
    assert any_of(a, b) == "a=1||b=2"
    assert all_of(any_of(a, b), c) == "{a=1||b=2}&&c=3"
    assert any_of(all_of(a, b), c) == "{a=1&&b=2}||c=3"
    assert all_of(a, None, "") == "a=1"
    assert all_of() == ""
