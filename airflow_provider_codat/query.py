"""Build Codat query strings from values, so that dates and strings come out right.

Codat's query language (https://docs.codat.io/using-the-api/querying): ``field op value`` conditions joined with
``&&`` (and) or ``||`` (or), grouped with ``{ }``; sub-properties with dots (``metadata.isDeleted``).
Operators: ``=`` and ``!=`` (numbers, strings, dates, booleans), ``~`` contains (strings only), ``>``, ``>=``,
``<``, ``<=`` (numbers and dates only).

Codat documents no escaping, so a string value that contains ``&&``, ``||``, ``{`` or ``}`` (which would change the
meaning of the query) is rejected with :class:`~airflow_provider_codat.errors.CodatValidationError` rather
than sent. The whole query is sent URL-encoded by the hook (httpx ``params=``); do not encode it yourself.

>>> all_of(condition("modifiedDate", ">=", datetime(2024, 5, 1, 10, tzinfo=UTC)),
...        condition("metadata.isDeleted", "!=", True))
'modifiedDate>=2024-05-01T10:00:00.0000000Z&&metadata.isDeleted!=true'
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any

from airflow_provider_codat.errors import CodatValidationError
from airflow_provider_codat.safe_repr import shorten

OPERATORS = ("=", "!=", "~", ">", ">=", "<", "<=")
_ORDERED = {">", ">=", "<", "<="}
_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_FORBIDDEN = ("&&", "||", "{", "}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def format_value(value: Any) -> str:
    """Format one value for a condition.

    - ``datetime`` (timezone-aware): converted to UTC, ``YYYY-MM-DDTHH:MM:SS.fffffffZ`` (Codat's 7 digits);
      naive datetimes are refused (their instant is ambiguous);
    - ``date``: ``YYYY-MM-DD``; ``bool``: ``true``/``false``; ``int``/``float``/``Decimal``: as is;
    - ``str``: as is, after checking it cannot break out of the condition.

    :param value: the value to format.
    :raises CodatValidationError: for a value that cannot be written safely.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise CodatValidationError(
                f"Query dates must be timezone-aware (got naive {value.isoformat()}): add tzinfo=UTC."
            )
        utc = value.astimezone(dt.UTC).replace(tzinfo=None)
        # isoformat, unlike strftime("%Y"), always writes four-digit years.
        return utc.isoformat(timespec="microseconds") + "0Z"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise CodatValidationError(f"Query numbers must be finite, got {shorten(value)}.")
        return repr(value)
    if isinstance(value, str):
        if value == "":
            raise CodatValidationError("Query strings must not be empty (Codat cannot query null or empty).")
        for token in _FORBIDDEN:
            if token in value:
                raise CodatValidationError(
                    f"Query string {shorten(value)} contains {token!r}, which Codat's query language reads as an "
                    "operator and offers no way to escape: filter on another field, or filter after reading."
                )
        if _CONTROL.search(value):
            raise CodatValidationError(f"Query string {shorten(value)} contains control characters.")
        return value
    raise CodatValidationError(
        f"Cannot use a {type(value).__name__} in a Codat query: pass a str, number, bool, date or datetime."
    )


def condition(field: str, op: str, value: Any) -> str:
    """One condition, e.g. ``condition("modifiedDate", ">=", since)`` -> ``modifiedDate>=2024-...Z``.

    :param field: a field name, dotted for sub-properties (``metadata.isDeleted``).
    :param op: one of ``=``, ``!=``, ``~``, ``>``, ``>=``, ``<``, ``<=``.
    :param value: see :func:`format_value`.
    """
    if not isinstance(field, str) or not _FIELD.fullmatch(field):
        raise CodatValidationError(
            f"Query field must be a name like 'modifiedDate' or 'a.b', got {shorten(field)}."
        )
    if op not in OPERATORS:
        raise CodatValidationError(
            f"Query operator must be one of {', '.join(OPERATORS)}; got {shorten(op)}."
        )
    if op == "~" and not isinstance(value, str):
        raise CodatValidationError(f"The contains operator '~' works on strings only, got {shorten(value)}.")
    if op in _ORDERED and (
        isinstance(value, bool) or (isinstance(value, str) and not _is_ordered_text(value))
    ):
        raise CodatValidationError(
            f"The operator {op!r} compares numbers and dates only, got {shorten(value)} for {field}."
        )
    return f"{field}{op}{format_value(value)}"


def all_of(*conditions: str | None) -> str:
    """Join conditions with ``&&`` (and); empty ones are skipped, compound ones grouped in ``{ }``."""
    return _join("&&", conditions)


def any_of(*conditions: str | None) -> str:
    """Join conditions with ``||`` (or); empty ones are skipped, compound ones grouped in ``{ }``."""
    return _join("||", conditions)


def _join(operator: str, conditions: tuple[str | None, ...]) -> str:
    parts = [c for c in conditions if c]
    for part in parts:
        if not isinstance(part, str):
            raise CodatValidationError(f"Conditions must be strings, got {shorten(part)}.")
    if len(parts) == 1:
        return parts[0]
    return operator.join(f"{{{p}}}" if ("&&" in p or "||" in p) else p for p in parts)


def _is_ordered_text(value: str) -> bool:
    """A string that is a number or an ISO date/datetime can be compared with ``<``/``>``."""
    if _NUMBER.fullmatch(value):
        return True
    try:
        dt.datetime.fromisoformat(value)
    except ValueError:
        return False
    return True
