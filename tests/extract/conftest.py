"""Helpers for the extract tests: run the operator against the simulator and read back what it wrote."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_codat.datatypes import Scope, get_data_type


def read_records(folder: Path) -> list[dict]:
    """Every record in every part file under ``folder`` (all run folders), in file order."""
    records = []
    for path in sorted(folder.glob("run=*/part-*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            records.extend(json.loads(line) for line in handle)
    return records


def run_records(folder: Path, run_id: str) -> list[dict]:
    records = []
    for path in sorted((folder / f"run={run_id}").glob("part-*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            records.extend(json.loads(line) for line in handle)
    return records


def versions(records: list[dict]) -> list[tuple]:
    """(scope, id, modifiedDate) per record, duplicates kept, so that doubles show as a length mismatch."""
    return [
        (
            r.get("_codat", {}).get("connectionId"),
            r.get("_codat", {}).get("bankAccountId"),
            r["id"],
            r.get("modifiedDate"),
        )
        for r in records
    ]


def truth(control: Any, company_id: str, data_type: str) -> set[tuple]:
    """The simulator's (scope, id, modifiedDate) for every record of the type, deleted ones included."""
    entry = get_data_type(data_type)
    if entry.scope is Scope.COMPANY:
        return {(None, None, r["id"], r.get("modifiedDate")) for r in control.records(company_id, data_type)}
    out: set[tuple] = set()
    company = next(c for c in control.companies() if c["id"] == company_id)
    for connection in company["connections"]:
        if connection["sourceType"] != entry.source_type:
            continue
        conn_id = connection["id"]
        if entry.scope is Scope.CONNECTION:
            out |= {
                (conn_id, None, r["id"], r.get("modifiedDate"))
                for r in control.records(company_id, data_type, conn_id)
            }
        else:
            for account in control.bank_account_ids(company_id, conn_id):
                found = control.records(company_id, data_type, conn_id, account)
                out |= {(conn_id, account, r["id"], r.get("modifiedDate")) for r in found}
    return out


@pytest.fixture
def extract(codat_simulator, monkeypatch, tmp_path) -> Callable[..., dict]:
    """Run ``CodatExtractOperator.execute`` with a small context; destination ``file://{tmp_path}/out``."""
    monkeypatch.setenv("AIRFLOW_CONN_CODAT_DEFAULT", codat_simulator.connection_json)
    from airflow_provider_codat.operators.extract import CodatExtractOperator

    def run(company_id: str, data_type: str, run_id: str = "run1", **kwargs: Any) -> dict:
        kwargs.setdefault("destination", f"file://{tmp_path}/out")
        operator = CodatExtractOperator(
            task_id=f"extract_{data_type}", company_id=company_id, data_type=data_type, **kwargs
        )
        return operator.execute({"run_id": run_id})

    return run


@pytest.fixture
def out(tmp_path) -> Callable[[str, str], Path]:
    """The folder of one company and type under the default destination."""
    return lambda company_id, data_type: tmp_path / "out" / company_id / data_type


@pytest.fixture
def company(codat_simulator) -> str:
    """A linked company with accounting, banking and commerce connections."""
    companies = codat_simulator.control.companies()
    for found in companies:
        kinds = {c["sourceType"] for c in found["connections"]}
        statuses = {c["status"] for c in found["connections"]}
        if {"Accounting", "Banking", "Commerce"} <= kinds and statuses == {"Linked"}:
            return found["id"]
    raise AssertionError("the simulator has no company with all three connection kinds")
