"""Checks of the caller-supplied parameters that are not ids: queries, ``orderBy``, page sizes, integers,
booleans and the one path segment taken from a source platform (a bank account id).

Query parameters go through httpx's ``params=`` (encoded there), and are checked here for length, type and
shape. Ids and data types are parsed into checked values instead (:mod:`~airflow_provider_codat.values`,
:func:`~airflow_provider_codat.datatypes.get_data_type`), and paths are built from those in one place
(:mod:`~airflow_provider_codat.hooks.paths`); :func:`require_uuid` and :func:`require_data_type` remain as thin
compatibility functions over them.
"""

from __future__ import annotations

import re
from typing import Any

from airflow_provider_codat.datatypes import DataType, get_data_type
from airflow_provider_codat.errors import CodatValidationError
from airflow_provider_codat.safe_repr import shorten
from airflow_provider_codat.values import CodatId

MAX_QUERY_LENGTH = 2047  # Codat rejects a query of 2,048 characters or more.
MAX_PAGE_SIZE = 5000
MAX_FIELD_LENGTH = 200  # Codat's field paths are a few dozen characters; a longer name is a mistake.
_FIELD = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
_ORDER_BY = re.compile(rf"-?{_FIELD}")
_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,199}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def require_segment(value: Any, what: str) -> str:
    """Check an id that Codat takes from the source platform (a bank account id): one safe path segment.

    Such ids are not always UUIDs (QuickBooks uses numbers), so letters, digits, ``-`` and ``_`` are allowed,
    and ``.`` inside; never ``/``, ``\\``, ``?``, ``#``, ``%`` (encoded forms), whitespace or a leading dot.

    :param value: the id given by the caller.
    :param what: what the id is, named in the error.
    """
    if not isinstance(value, str) or not _SEGMENT.fullmatch(value) or ".." in value:
        raise CodatValidationError(
            f"{what} must be a plain id (letters, digits, '-', '_', '.'), got {shorten(value)}."
        )
    return value


def require_query(value: Any, what: str = "query") -> str | None:
    """Check a Codat query string (it is sent URL-encoded as one parameter value, never spliced into a URL).

    :param value: the query (``None`` for no filter).
    :param what: the parameter name, for the error.
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise CodatValidationError(f"{what} must be a string; build one with airflow_provider_codat.query.")
    if len(value) > MAX_QUERY_LENGTH:
        raise CodatValidationError(
            f"{what} is {len(value)} characters long; Codat rejects queries of 2048 characters or more."
        )
    if _CONTROL.search(value):
        raise CodatValidationError(f"{what} contains control characters: {shorten(value)}.")
    return value


def require_order_by(value: Any) -> str | None:
    """Check an ``orderBy`` value: one field name, dotted for sub-properties, ``-`` for descending.

    :param value: e.g. ``"modifiedDate"`` or ``"-requested"``.
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_FIELD_LENGTH or not _ORDER_BY.fullmatch(value):
        raise CodatValidationError(
            f"order_by must be a field name such as 'modifiedDate' or '-modifiedDate', got {shorten(value)}."
        )
    return value


def require_page_size(value: Any) -> int:
    """Check a page size: an integer from 1 to 5000 (Codat's maximum).

    :param value: the requested page size.
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PAGE_SIZE:
        raise CodatValidationError(
            f"page_size must be an integer from 1 to {MAX_PAGE_SIZE}, got {shorten(value)}."
        )
    return value


def require_int(value: Any, what: str, minimum: int = 1) -> int:
    """Check an integer parameter (``periodLength``, ``periodsToCompare``)."""
    if (
        isinstance(value, str) and value.isdigit() and len(value) <= 18
    ):  # int() refuses (loudly) past 4300 digits
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise CodatValidationError(f"{what} must be an integer >= {minimum}, got {shorten(value)}.")
    return value


_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off", ""})


def require_bool(value: Any, what: str) -> bool:
    """Accept a boolean or its rendered-template spelling (``"True"``, ``"false"``, ``"1"``).

    :param value: the value given, perhaps rendered from a template.
    :param what: the parameter's name, named in the error.
    """
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise CodatValidationError(f"{what} must be true or false, got {shorten(value)}.")


# -- compatibility: ids and data types are checked into values (values.py, datatypes.get_data_type) --------
def require_uuid(value: Any, what: str) -> str:
    """Return ``value`` as a canonical lower-case UUID string, or raise :class:`CodatValidationError`.

    A plain ``str``; inside the provider prefer the typed values (:class:`~airflow_provider_codat.values.CompanyId`,
    ...), which are parsed once and trusted below.

    :param value: the id given by the caller.
    :param what: what the id is (``"company_id"``), named in the error.
    """
    return str(CodatId.parse(value, what))


def require_data_type(key: Any) -> DataType:
    """Return the catalogue entry for ``key``, or raise :class:`CodatValidationError` listing the valid keys.

    :param key: a Codat dataType key such as ``"invoices"``.
    """
    return get_data_type(key)
