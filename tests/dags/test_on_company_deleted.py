"""codat_on_company_deleted run by ``airflow dags test`` (SQLite), triggered by hand for one company: its rows
leave every table, the other company's stay."""

from __future__ import annotations

from pathlib import Path

import pytest
from deltalake import DeltaTable

from tests.tables.test_deleted_companies import GONE, STAYS, land_and_merge

DAGS = Path(__file__).resolve().parents[2] / "dags"


@pytest.mark.slow
def test_a_run_for_a_company_takes_its_rows_out_of_every_table(airflow_cli, tmp_path):
    land_and_merge(tmp_path, "run1", "2026-11-01T00:00:00Z")
    result = airflow_cli.dags_test(
        "codat_on_company_deleted",
        dags_folder=DAGS,
        conf={"company_ids": [GONE], "destination": tmp_path.as_uri()},
    )
    assert result.returncode == 0, result.output[-5000:]
    assert result.task_states() == {("forget_companies", -1): "success"}
    returned = result.xcom("forget_companies")
    assert returned["companies"] == returned["recorded"] == [GONE]
    assert {t: outcome["removed"] for t, outcome in returned["tables"].items()} == {
        "invoices": 3,
        "payments": 3,
    }
    for data_type in ("invoices", "payments"):
        table = DeltaTable(str(tmp_path / "_tables" / data_type)).to_pyarrow_table()
        assert set(table.column("_codat_company_id").to_pylist()) == {STAYS}
