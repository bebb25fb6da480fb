"""Request paths and parameters: every path the hook sends is built here, from constant tails, the catalogue's
templates and checked ids.

Each function parses the ids it puts into a path (:meth:`CompanyId.parse <airflow_provider_codat.values.CodatId.parse>`
and its kin), once: a value that is already of its type costs nothing, a plain string from a user is checked in
full. Data types are accepted as a catalogue :class:`~airflow_provider_codat.datatypes.DataType` (taken as it
is) or a key (looked up once). The paths returned are plain ``str``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow_provider_codat.datatypes import DataType, Scope, get_data_type
from airflow_provider_codat.errors import CodatValidationError
from airflow_provider_codat.query import format_value
from airflow_provider_codat.safe_repr import shorten
from airflow_provider_codat.validation import require_int, require_segment
from airflow_provider_codat.values import CompanyId, ConnectionId, DatasetId

# Financial statements: 24 one-month periods (Codat keeps 24 months of history by default).
DEFAULT_REPORT_PARAMS = {"periodLength": 1, "periodsToCompare": 24}
_REPORT_PARAMS = {"periodLength": "periodLength", "period_length": "periodLength",
                  "periodsToCompare": "periodsToCompare", "periods_to_compare": "periodsToCompare",
                  "startMonth": "startMonth", "start_month": "startMonth"}  # fmt: skip


def company_path(company_id: str, tail: str = "") -> str:
    """``/companies/{companyId}{tail}``.

    :param company_id: a :class:`CompanyId`, or a string checked here.
    :param tail: a constant of the hook's (``/dataStatus``, ``/data/all`` ...), never caller input.
    """
    return f"/companies/{CompanyId.parse(company_id)}{tail}"


def history_path(company_id: str, dataset_id: str) -> str:
    """``/companies/{companyId}/data/history/{datasetId}``."""
    company = company_path(company_id)  # checked first: a bad company id is named before a bad dataset id
    return f"{company}/data/history/{DatasetId.parse(dataset_id)}"


def queue_path(company_id: str, entry: DataType) -> str:
    """``/companies/{companyId}/data/queue/{dataType}`` of a catalogue entry."""
    return company_path(company_id, f"/data/queue/{entry.key}")


def connection_param(connection_id: str | None) -> str | None:
    """The ``connectionId`` query parameter: a checked connection id as a plain ``str``, or ``None``."""
    return str(ConnectionId.parse(connection_id)) if connection_id else None


def list_path(
    data_type: str | DataType, company_id: str, connection_id: str | None, account_id: str | None
) -> str:
    """The read path of a paged data type (see :func:`read_path`); a one-object type is refused.

    :param data_type: a catalogue entry, or a key looked up here.
    """
    entry = get_data_type(data_type)
    if not entry.paged:
        raise CodatValidationError(f"Data type {entry.key!r} is one object, not a list: use get_report().")
    return read_path(entry, company_id, connection_id, account_id)


def report_request(
    data_type: str | DataType, company_id: str, connection_id: str | None, params: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """The read path and query parameters of a one-object data type (see :func:`report_params`); a paged
    type is refused.

    :param data_type: a catalogue entry, or a key looked up here.
    """
    entry = get_data_type(data_type)
    if not entry.paged:
        return read_path(entry, company_id, connection_id, None), report_params(entry, params)
    raise CodatValidationError(f"Data type {entry.key!r} is a paged list: use iter_pages().")


def read_path(entry: DataType, company_id: str, connection_id: str | None, account_id: str | None) -> str:
    """The read path of a catalogue entry, with every id checked and the scope checked.

    :param entry: the catalogue entry.
    :param company_id: a :class:`CompanyId`, or a string checked here.
    :param connection_id: a :class:`ConnectionId` or a string, required for connection and bank-account scoped
        types, refused otherwise.
    :param account_id: a bank account id (one safe path segment), required for ``bankTransactions`` only.
    """
    company_id = CompanyId.parse(company_id)
    if entry.scope is Scope.COMPANY:
        if connection_id or account_id:
            raise CodatValidationError(f"Data type {entry.key!r} is read per company: drop connection_id.")
        return entry.read_path(company_id)
    if not connection_id:
        raise CodatValidationError(f"Data type {entry.key!r} is read per connection: pass connection_id.")
    connection_id = ConnectionId.parse(connection_id)
    if entry.scope is Scope.BANK_ACCOUNT:
        if not account_id:
            raise CodatValidationError(f"Data type {entry.key!r} is read per bank account: pass account_id.")
        return entry.read_path(company_id, connection_id, require_segment(account_id, "account_id"))
    if account_id:
        raise CodatValidationError(f"Data type {entry.key!r} is not read per bank account: drop account_id.")
    return entry.read_path(company_id, connection_id)


def report_params(entry: DataType, params: dict[str, Any]) -> dict[str, Any]:
    """Query parameters of a one-object read: financial statements take ``periodLength``,
    ``periodsToCompare`` (defaults 1 and 24) and ``startMonth``; other snapshots take none.

    :param entry: the catalogue entry.
    :param params: what the caller passed (camelCase or snake_case names).
    """
    unknown = sorted(k for k in params if k not in _REPORT_PARAMS or not entry.report)
    if unknown:
        allowed = "periodLength, periodsToCompare, startMonth" if entry.report else "none"
        raise CodatValidationError(
            f"Unknown parameters for {entry.key!r}: {shorten(unknown)}; allowed: {allowed}."
        )
    if not entry.report:
        return {}
    merged = dict(DEFAULT_REPORT_PARAMS)
    merged.update({_REPORT_PARAMS[k]: v for k, v in params.items() if v is not None})
    out = {
        "periodLength": require_int(merged["periodLength"], "periodLength"),
        "periodsToCompare": require_int(merged["periodsToCompare"], "periodsToCompare"),
    }
    start = merged.get("startMonth")
    if start is not None:
        if isinstance(start, datetime):
            # A month is a calendar date, not an instant: 1 January in Paris is 31 December in UTC, which
            # would ask for December. Its own date is sent (a naive datetime is fine here).
            start = start.date()
        out["startMonth"] = format_value(start)
    return out
