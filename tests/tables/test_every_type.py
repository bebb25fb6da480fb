"""Every data type of the catalogue types exactly; one type of each kind and scope lands and merges into a
table equal to what Codat holds."""

from __future__ import annotations

import gzip
import json
from decimal import Decimal
from pathlib import Path

import pytest

from airflow_provider_codat.datatypes import CATALOGUE, Kind
from airflow_provider_codat.tables.batch import merge_types
from airflow_provider_codat.tables.part_reader import newest_table
from airflow_provider_codat.tables.rows import record_row, to_arrow
from tests.tables.conftest import _scopes, assert_table_is_truth, table_rows, truth

# A company-, connection- and bank-account-scoped incremental type, a full type, and three snapshots.
REPRESENTATIVE = [
    "invoices",
    "banking-accounts",
    "bankTransactions",
    "commerce-products",
    "balanceSheet",
    "company",
    "commerce-companyInfo",
]
PAGED = sorted(key for key, entry in CATALOGUE.items() if entry.kind is not Kind.SNAPSHOT)


def _landed(folder: Path) -> list[dict]:
    records = []
    for path in sorted(folder.glob("run=*/part-*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            records.extend(json.loads(line, parse_float=Decimal) for line in handle)
    return records


def _scope_key(record: dict) -> str:
    lineage = record["_codat"]
    return f"{lineage['companyId']}/{lineage.get('connectionId') or ''}/"


@pytest.mark.codat_simulator(companies=1, records=5)
def test_each_kind_and_scope_merges_into_a_table_equal_to_the_simulator(
    codat_simulator, company, extract, tmp_path
):
    control = codat_simulator.control
    landing = f"file://{tmp_path}/codat-data"
    for data_type in REPRESENTATIVE:
        extract(company, data_type, "run1", destination=landing)
    results, failures = merge_types(
        data_types=REPRESENTATIVE, destination=landing, company_ids=[company], run_id="run1"
    )
    assert failures == []
    for data_type in REPRESENTATIVE:
        rows = table_rows(tmp_path / "codat-data" / "_tables" / data_type)
        if CATALOGUE[data_type].kind is not Kind.SNAPSHOT:
            assert_table_is_truth(rows, truth(control, [company], data_type))
            continue
        landed = _landed(tmp_path / "codat-data" / company / data_type)  # the object: one row per scope
        assert len(rows) == len(landed) == results[data_type]["inserted"]
        for row in rows:
            record = next(r for r in landed if row["_codat_key"].startswith(_scope_key(r)))
            expected = {key: value for key, value in record.items() if key != "_codat"}
            assert_table_is_truth([row], {row["_codat_key"]: expected})


@pytest.mark.codat_simulator(companies=1, records=5)
def test_every_paged_type_types_the_simulators_records_exactly(codat_simulator, company):
    control = codat_simulator.control
    for data_type in PAGED:
        if not CATALOGUE[data_type].fetch_on_first_link:
            control.mutate(company, data_type, created=3)
        landed = []
        for connection_id, account_id in _scopes(control, company, data_type):
            lineage = {"companyId": company, "connectionId": connection_id, "bankAccountId": account_id}
            lineage["extractedAt"] = "2026-11-21T10:05:00.000000Z"
            for record in control.records(company, data_type, connection_id, account_id):
                landed.append({**record, "_codat": {k: v for k, v in lineage.items() if v}})
        rows = [record_row(data_type, record, "run=1", snapshot=False) for record in landed]
        table = newest_table(to_arrow(data_type, rows)).to_pylist()
        expected = {
            f"{r['_codat']['companyId']}/{r['_codat'].get('connectionId') or ''}/"
            f"{r['_codat'].get('bankAccountId') or ''}/{r['id']}": r
            for r in landed
        }
        assert table, data_type
        for row in table:
            record = {key: value for key, value in expected[row["_codat_key"]].items() if key != "_codat"}
            assert_table_is_truth([row], {row["_codat_key"]: record})
