"""The portfolio DAGs: both parse with no I/O, and one `airflow dags test` of the sweep (the plan, its mapped
batches and the finish) against the simulator on SQLite. The changes DAG runs the same functions, tested in
process in ``test_window.py`` (an asset-triggered run needs a scheduler)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from airflow.sdk import Asset
from deltalake import DeltaTable

from airflow_provider_codat.portfolio.dag import PORTFOLIO_TYPES
from airflow_provider_codat.portfolio.route import PORTFOLIO_ASSET
from airflow_provider_codat.version_compat import DagBag

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags"


def test_the_changes_dag_runs_on_the_portfolio_asset_one_window_at_a_time():
    bag = DagBag(dag_folder=str(DAGS / "codat_portfolio.py"))
    assert bag.import_errors == {}
    changes, sweep = bag.dags["codat_portfolio_changes"], bag.dags["codat_portfolio_sweep"]
    assert changes.timetable.asset_condition == Asset(PORTFOLIO_ASSET)
    assert changes.max_active_runs == 1 and sweep.max_active_runs == 1
    assert changes.get_task("extract").upstream_task_ids == {"plan"}
    assert changes.get_task("finish").trigger_rule == "all_done"  # merges what the other batches landed
    assert not any(task.outlets for task in changes.tasks)  # no event that would start a run again


@pytest.mark.slow
@pytest.mark.codat_simulator(companies=3, records=10, sync_seconds=1)
def test_the_sweep_lands_and_merges_every_company_and_notes_its_marks(airflow_cli, codat_simulator, tmp_path):
    result = airflow_cli.dags_test(
        "codat_portfolio_sweep",
        dags_folder=DAGS,
        conf={"destination": str(tmp_path)},
        extra_env=codat_simulator.conn_env,
    )
    assert result.run_id is not None, result.output[-5000:]
    states = result.task_states()
    assert set(states.values()) == {"success"}, states
    assert result.xcom("finish" if ("finish", -1) in states else "sweep_finish")["companies"] == 3
    # One Delta commit per type for the whole run, every company in it.
    for key in ("invoices", "bankTransactions"):
        history = DeltaTable(str(tmp_path / "_tables" / key)).history()
        assert sum(1 for entry in history if entry.get("operation") == "MERGE") == 1
    marks = json.loads(gzip.decompress((tmp_path / "_portfolio" / "heard.json.gz").read_bytes()))
    assert set(marks) == {c["id"] for c in codat_simulator.control.companies()}
    assert all(set(types) == set(PORTFOLIO_TYPES) for types in marks.values())
