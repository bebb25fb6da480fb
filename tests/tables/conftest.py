"""Helpers for the table tests: land runs from the simulator, merge them, and compare the table with the
simulator's records value by value (decimals exactly, dates to the microsecond a Delta timestamp holds)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from deltalake import DeltaTable

from airflow_provider_codat.datatypes import Scope, get_data_type
from airflow_provider_codat.timestamps import parse_timestamp
from tests.extract.conftest import company, extract  # noqa: F401  (fixtures)

KEY = "_codat_key"


def table_rows(path: Any) -> list[dict[str, Any]]:
    """Every row of the Delta table at ``path``, read back by delta-rs alone."""
    return DeltaTable(str(path)).to_pyarrow_table().to_pylist()


def _scopes(control: Any, company_id: str, data_type: str) -> list[tuple[str | None, str | None]]:
    """(connection, bank account) of every collection of the type for the company."""
    entry = get_data_type(data_type)
    if entry.scope is Scope.COMPANY:
        return [(None, None)]
    found = next(c for c in control.companies() if c["id"] == company_id)
    connections = [c["id"] for c in found["connections"] if c["sourceType"] == entry.source_type]
    if entry.scope is Scope.CONNECTION:
        return [(connection_id, None) for connection_id in connections]
    return [(c, a) for c in connections for a in control.bank_account_ids(company_id, c)]


def truth(control: Any, company_ids: list[str], data_type: str) -> dict[str, dict]:
    """``{company/connection/account/id: record}`` of the simulator's live records (paged types)."""
    found = {}
    for company_id in company_ids:
        for connection_id, account_id in _scopes(control, company_id, data_type):
            for record in control.records(company_id, data_type, connection_id, account_id):
                if not (record.get("metadata") or {}).get("isDeleted"):
                    key = f"{company_id}/{connection_id or ''}/{account_id or ''}/{record['id']}"
                    found[key] = record
    return found


def _exact(value: Any) -> Any:
    """``value`` with its floats as the decimals they print as (the simulator's records hold floats)."""
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {name: _exact(item) for name, item in value.items()}
    if isinstance(value, list):
        return [_exact(item) for item in value]
    return value


def assert_same(stored: Any, sent: Any, where: str) -> None:
    """``stored`` (a table value) holds exactly what Codat ``sent``: decimals digit for digit (a longer scale
    adds zeros only), dates to the microsecond, objects field by field (each field Codat sent has one; fields it did not send
    are null)."""
    if isinstance(stored, Decimal):
        assert not isinstance(sent, bool) and Decimal(str(sent)) == stored, where
        assert stored.normalize() == Decimal(str(sent)).normalize(), where
    elif isinstance(stored, datetime):
        assert isinstance(sent, str), where
        assert stored == parse_timestamp(sent), where
    elif isinstance(stored, dict):
        assert isinstance(sent, dict), where
        assert set(sent) <= set(stored), f"{where}: fields {sorted(set(sent) - set(stored))} have no column"
        for name, value in stored.items():
            assert_same(value, sent.get(name), f"{where}.{name}")
    elif isinstance(stored, list):
        assert isinstance(sent, list) and len(stored) == len(sent), where
        for index, (value, item) in enumerate(zip(stored, sent, strict=True)):
            assert_same(value, item, f"{where}[{index}]")
    elif isinstance(stored, str) and not isinstance(sent, str) and sent is not None:
        assert json.loads(stored, parse_float=Decimal) == _exact(sent), (
            where
        )  # JSON text of a free-form value
    else:
        assert stored == sent, where


def assert_table_is_truth(
    rows: list[dict[str, Any]], expected: dict[str, dict], *, gone_unseen: bool = False
) -> None:
    """One row per live record, each equal to the simulator's record in every field Codat sent.

    :param gone_unseen: a type without ``metadata.isDeleted`` (bank transactions): a record deleted at the
        source vanishes without a trace, so its row may stay (docs/tables.md).
    """
    keys = [row[KEY] for row in rows]
    assert len(keys) == len(set(keys)), "a record has two rows"
    if gone_unseen:
        assert set(keys) >= set(expected)
        rows = [row for row in rows if row[KEY] in expected]
    else:
        assert set(keys) == set(expected)
    for row in rows:
        record = expected[row[KEY]]
        for name, value in record.items():
            assert name in row, f"{row[KEY]}: field {name} has no column"
            assert_same(row[name], value, f"{row[KEY]}.{name}")


def land_changing_runs(
    control: Any,
    run_extract: Any,
    companies: list[str],
    runs: Sequence[str],
    destination: str,
    merge: Any = None,
) -> None:
    """Extract (``run_extract``: the ``extract`` fixture) ``runs`` of invoices for ``companies``, the simulator creating, modifying and deleting some before
    each run after the first; ``merge(company_id, run_id)`` after each extract when given."""
    for index, run_id in enumerate(runs):
        for company_id in companies:
            if index:
                control.mutate(company_id, "invoices", created=2, modified=3, deleted=2)
            run_extract(company_id, "invoices", run_id, destination=destination)
            if merge is not None:
                merge(company_id, run_id)
