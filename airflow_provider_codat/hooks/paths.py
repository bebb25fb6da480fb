"""Request paths and parameters, built only from the catalogue's templates and validated values."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow_provider_codat.datatypes import DataType, Scope
from airflow_provider_codat.errors import CodatValidationError
from airflow_provider_codat.query import format_value
from airflow_provider_codat.safe_repr import shorten
from airflow_provider_codat.validation import require_int, require_segment, require_uuid

# Financial statements: 24 one-month periods (Codat keeps 24 months of history by default).
DEFAULT_REPORT_PARAMS = {"periodLength": 1, "periodsToCompare": 24}
_REPORT_PARAMS = {"periodLength": "periodLength", "period_length": "periodLength",
                  "periodsToCompare": "periodsToCompare", "periods_to_compare": "periodsToCompare",
                  "startMonth": "startMonth", "start_month": "startMonth"}  # fmt: skip


def history_path(company_id: str, dataset_id: str) -> str:
    """``/companies/{companyId}/data/history/{datasetId}`` from two validated UUIDs."""
    company_id = require_uuid(company_id, "company_id")
    return f"/companies/{company_id}/data/history/{require_uuid(dataset_id, 'dataset_id')}"


def read_path(entry: DataType, company_id: str, connection_id: str | None, account_id: str | None) -> str:
    """The read path of a catalogue entry, with every id validated and the scope checked.

    :param entry: the catalogue entry.
    :param company_id: a UUID.
    :param connection_id: a UUID, required for connection and bank-account scoped types, refused otherwise.
    :param account_id: a bank account id (one safe path segment), required for ``bankTransactions`` only.
    """
    company_id = require_uuid(company_id, "company_id")
    if entry.scope is Scope.COMPANY:
        if connection_id or account_id:
            raise CodatValidationError(f"Data type {entry.key!r} is read per company: drop connection_id.")
        return entry.read_path(company_id)
    if not connection_id:
        raise CodatValidationError(f"Data type {entry.key!r} is read per connection: pass connection_id.")
    connection_id = require_uuid(connection_id, "connection_id")
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
