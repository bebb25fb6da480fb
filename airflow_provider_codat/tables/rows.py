"""Landed records -> typed rows (an Arrow table) with the key, version and lineage columns of :mod:`.key`.

Each value is checked against its column's type; one that does not fit (text in a decimal, a date that is not
a date, a decimal with more than 18 fractional or 20 integer digits) fails with :class:`CodatTableError`
naming the record, its company and field, before anything is written. Fields the spec lacks (Codat
added them later), at the top or inside a nested object, become text fields holding their JSON, so the table
and its structs widen instead of failing.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec
import pyarrow as pa

from airflow_provider_codat.errors import CodatTableError
from airflow_provider_codat.landing.records import is_deleted, modified_key
from airflow_provider_codat.safe_repr import shorten
from airflow_provider_codat.tables import key as k
from airflow_provider_codat.tables.schema import TIMESTAMP, arrow_type, record_fields
from airflow_provider_codat.timestamps import parse_timestamp

_ENCODER = msgspec.json.Encoder(decimal_format="number")
LINEAGE_SCHEMA = [
    pa.field(k.COMPANY, pa.string()),
    pa.field(k.CONNECTION, pa.string()),
    pa.field(k.BANK_ACCOUNT, pa.string()),
    pa.field(k.EXTRACTED_AT, TIMESTAMP),
    pa.field(k.RUN, pa.string()),
    pa.field(k.DELETED, pa.bool_()),
    pa.field(k.MODIFIED, pa.string()),
    pa.field(k.KEY, pa.string()),
    pa.field(k.KEY_HASH, pa.int64()),
    pa.field(k.MONTH, pa.string()),
]


class _Misfit(ValueError):
    """A value that does not fit its type (message: what was expected)."""


def _convert(value: Any, spec: Any) -> Any:
    """``value`` in the Python form Arrow takes for ``spec`` (see :mod:`.schema`)."""
    if value is None:
        return None
    if isinstance(spec, dict):
        if "list" in spec:
            if not isinstance(value, list):
                raise _Misfit("a list")
            return [_convert(item, spec["list"]) for item in value]
        if not isinstance(value, dict):
            raise _Misfit("an object")
        known = {name: _convert(value.get(name), sub) for name, sub in spec["struct"]}
        added = {name: _text_or_none(item) for name, item in value.items() if name not in known}
        return known | added
    return _SCALAR_CONVERTERS[spec](value)


def _timestamp(value: Any) -> Any:
    moment = parse_timestamp(value) if isinstance(value, str) else None
    if moment is None:
        raise _Misfit("an ISO 8601 date")
    return moment


def _decimal(value: Any) -> Decimal:
    # A number written as text ("12.50") is taken, as Arrow's JSON reader (the fast path) takes it.
    if isinstance(value, bool) or not isinstance(value, int | Decimal | float | str):
        raise _Misfit("a number")
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except ArithmeticError:
        raise _Misfit("a number") from None
    if not number.is_finite():
        raise _Misfit("a finite number")
    return number


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | Decimal) or value != int(value):
        raise _Misfit("an integer")
    return int(value)


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Misfit("true or false")
    return value


def _text(value: Any) -> str:
    return value if isinstance(value, str) else _ENCODER.encode(value).decode()


def _text_or_none(value: Any) -> str | None:
    """A field the spec lacks: its JSON as text."""
    return None if value is None else _text(value)


_SCALAR_CONVERTERS = {
    "timestamp": _timestamp,
    "decimal": _decimal,
    "integer": _integer,
    "boolean": _boolean,
    "string": _text,
    "json": _text,  # free-form: text as it is, anything else as its JSON
}


def _lineage(record: dict[str, Any], lineage: dict[str, Any], run: str, snapshot: bool) -> dict[str, Any]:
    key = k.record_key(lineage, record, snapshot=snapshot)
    extracted = str(lineage.get("extractedAt") or "")
    return {
        k.COMPANY: lineage.get("companyId"),
        k.CONNECTION: lineage.get("connectionId"),
        k.BANK_ACCOUNT: lineage.get("bankAccountId"),
        k.EXTRACTED_AT: _timestamp(extracted),
        k.RUN: run,
        k.DELETED: is_deleted(record),
        k.MODIFIED: modified_key(record),
        k.KEY: key,
        k.KEY_HASH: k.key_hash(key),
        k.MONTH: k.month_of(extracted),
    }


def _misfit_error(
    data_type: str, record: dict[str, Any], lineage: dict[str, Any], field: str, exc: Any
) -> Exception:
    return CodatTableError(
        f"{data_type}: record {shorten(record.get('id'))} of company {lineage.get('companyId')} has "
        f"{field}={shorten(record.get(field))}, which does not fit its column ({exc}). Nothing was merged; "
        "the landing keeps the record as Codat sent it. Report the record to Codat support, or rebuild this "
        "table from the landing without it (docs/tables.md)."
    )


def record_row(data_type: str, landed: dict[str, Any], run: str, *, snapshot: bool) -> dict[str, Any]:
    """One landed record as a row: the spec's fields typed, other fields as JSON text, then lineage.

    :param data_type: the catalogue key.
    :param landed: the record as landed (with ``_codat``).
    :param run: the run folder it landed in.
    :param snapshot: a snapshot type (one row per scope).
    """
    record = dict(landed)
    lineage = record.pop("_codat", None) or {}
    row: dict[str, Any] = {}
    for field, spec in record_fields(data_type):
        try:
            row[field] = _convert(record.get(field), spec)
        except _Misfit as exc:
            raise _misfit_error(data_type, record, lineage, field, f"expected {exc} at some level") from None
    known = row.keys()
    for field, value in record.items():
        if field not in known:
            row[field] = _text_or_none(value)
    try:
        row.update(_lineage(record, lineage, run, snapshot))
    except (_Misfit, ValueError) as exc:
        raise _misfit_error(data_type, record, lineage, "modifiedDate", exc) from None
    return row


def table_schema(data_type: str, rows: list[dict[str, Any]]) -> pa.Schema:
    """The spec's columns (their structs widened by the fields met in ``rows``), then the extra top-level
    fields met in ``rows`` (as text), then lineage."""
    fields = [
        pa.field(name, _widened(spec, [row.get(name) for row in rows]))
        for name, spec in record_fields(data_type)
    ]
    names = {field.name for field in fields} | {field.name for field in LINEAGE_SCHEMA}
    extra = sorted({name for row in rows for name in row} - names)
    return pa.schema(fields + [pa.field(name, pa.string()) for name in extra] + LINEAGE_SCHEMA)


def _widened(spec: Any, values: list[Any]) -> pa.DataType:
    """The Arrow type of ``spec`` with, in each struct, a text field for each field the spec lacks that one of
    the converted ``values`` holds."""
    if isinstance(spec, str):
        return arrow_type(spec)
    present = [value for value in values if value]
    if "list" in spec:
        return pa.list_(_widened(spec["list"], [item for value in present for item in value]))
    fields = [
        pa.field(name, _widened(sub, [value.get(name) for value in present])) for name, sub in spec["struct"]
    ]
    known = {name for name, _ in spec["struct"]}
    added = sorted({name for value in present for name in value} - known)
    return pa.struct(fields + [pa.field(name, pa.string()) for name in added])


def to_arrow(data_type: str, rows: list[dict[str, Any]]) -> pa.Table:
    """``rows`` as an Arrow table; a value Arrow refuses (a decimal beyond 38 digits or 18 fractional ones)
    fails naming its record and field.

    :param data_type: the catalogue key (names the record in an error).
    :param rows: from :func:`record_row`.
    """
    schema = table_schema(data_type, rows)
    try:
        return pa.Table.from_pylist(rows, schema=schema)
    except (pa.ArrowException, OverflowError, TypeError, ValueError):
        _raise_for_first_misfit(data_type, rows, schema)
        raise


def _raise_for_first_misfit(data_type: str, rows: list[dict[str, Any]], schema: pa.Schema) -> None:
    for row in rows:
        for field in schema:
            try:
                pa.array([row.get(field.name)], type=field.type)
            except (pa.ArrowException, OverflowError, TypeError, ValueError) as exc:
                raise CodatTableError(
                    f"{data_type}: record {shorten(row.get('id'))} of company {row.get(k.COMPANY)} has "
                    f"{field.name}={shorten(row.get(field.name))}, which does not fit {field.type} ({exc}). "
                    "Nothing was merged; the landing keeps the record as Codat sent it. Report the record "
                    "to Codat support, or rebuild this table from the landing without it (docs/tables.md)."
                ) from None
