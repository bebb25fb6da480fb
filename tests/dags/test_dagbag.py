"""The example DAGs import cleanly, fast, and without touching the network, Variables or Connections; they
are built the way the README describes (table rows, chain, labels, bounds, Params)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk import BaseHook, Connection, Variable

from airflow_provider_codat.datatypes import fetch_on_first_link_types
from airflow_provider_codat.hooks.codat import CodatHook
from airflow_provider_codat.operators.extract import CodatExtractOperator
from airflow_provider_codat.operators.refresh import CodatQueueDataTypesOperator, CodatRefreshAllDataOperator
from airflow_provider_codat.sensors.freshness import CodatFreshnessSensor
from airflow_provider_codat.sensors.sync import CodatSyncSensor

DAGS = Path(__file__).resolve().parents[2] / "dags"
SYNC_DAGS = ["codat_sync_hourly", "codat_sync_daily", "codat_sync_weekly", "codat_sync_monthly"]
CODAT_RATE_LIMIT_PER_COMPANY = 10


def _forbidden(what: str):
    def boom(*args, **kwargs):
        raise AssertionError(f"{what} at parse time")

    return boom


@pytest.fixture(scope="module")
def parsed() -> dict[str, tuple[DagBag, float]]:
    """Each DAG file parsed on its own, with the network, Variables, Connections and the hook forbidden."""
    patch = pytest.MonkeyPatch()
    patch.setattr(socket.socket, "connect", _forbidden("a network connection"))
    patch.setattr(socket, "create_connection", _forbidden("a network connection"))
    patch.setattr(socket, "getaddrinfo", _forbidden("a DNS lookup"))
    patch.setattr(Variable, "get", _forbidden("Variable.get"))
    patch.setattr(Connection, "get", _forbidden("Connection.get"))
    patch.setattr(BaseHook, "get_connection", _forbidden("BaseHook.get_connection"))
    patch.setattr(CodatHook, "__init__", _forbidden("a CodatHook"))
    patch.delenv("CODAT_SYNC_POKE_INTERVAL", raising=False)
    try:
        DagBag(dag_folder=str(DAGS / "codat_sync.py"))  # warm Airflow's own imports first
        result = {}
        for path in sorted(DAGS.glob("*.py")):
            started = time.perf_counter()
            bag = DagBag(dag_folder=str(path))
            result[path.name] = (bag, time.perf_counter() - started)
        return result
    finally:
        patch.undo()


@pytest.fixture(scope="module")
def dags(parsed) -> dict:
    return {dag_id: dag for bag, _ in parsed.values() for dag_id, dag in bag.dags.items()}


def test_every_dag_file_imports_without_errors_network_variables_or_connections(parsed):
    assert set(parsed) == {"codat_sync.py", "codat_ar_report.py", "codat_on_change.py"}
    for name, (bag, seconds) in parsed.items():
        assert bag.import_errors == {}, name
        assert bag.dags, f"{name} defines no DAG"
        assert seconds < 0.5, f"{name} took {seconds:.2f} s to parse"


def test_one_dag_per_frequency_from_the_table(dags):
    assert set(SYNC_DAGS) | {"codat_ar_report", "codat_on_change"} == set(dags)
    schedules = {dag_id: dags[dag_id].schedule for dag_id in SYNC_DAGS}
    assert schedules == {
        "codat_sync_hourly": "@hourly",
        "codat_sync_daily": "@daily",
        "codat_sync_weekly": "@weekly",
        "codat_sync_monthly": "@monthly",
    }
    types = {dag_id: dags[dag_id].params["data_types"] for dag_id in SYNC_DAGS}
    assert types["codat_sync_hourly"] == ["invoices", "payments"]
    assert types["codat_sync_monthly"] == ["company", "taxRates", "chartOfAccounts"]
    assert types["codat_sync_weekly"] == fetch_on_first_link_types()
    assert {"invoices", "payments", "bills", "journalEntries", "bankTransactions"} <= set(
        types["codat_sync_daily"]
    )
    refresh = {dag_id: dags[dag_id].get_task("codat_sync.refresh").operator_class for dag_id in SYNC_DAGS}
    assert refresh.pop("codat_sync_weekly") is CodatRefreshAllDataOperator
    assert set(refresh.values()) == {CodatQueueDataTypesOperator}


def test_trigger_form_params(dags):
    for dag_id in SYNC_DAGS:
        params = dags[dag_id].params
        assert {"company_ids", "data_types", "full_refresh", "destination"} <= set(params), dag_id
        assert params["company_ids"] == []  # empty: every linked company
        assert params["full_refresh"] is False
        schema = params.get_param("data_types").schema
        assert schema["type"] == "array"
        assert schema["items"]["enum"] == params["data_types"]  # the form offers the table's types


def test_each_sync_dag_chains_list_refresh_wait_extract(dags):
    for dag_id in SYNC_DAGS:
        dag = dags[dag_id]
        chain = ["list_companies", "select", "codat_sync.targets", "codat_sync.refresh", "codat_sync.wait"]
        for upstream, downstream in zip(chain, chain[1:], strict=False):
            assert downstream in dag.get_task(upstream).downstream_task_ids, (dag_id, upstream, downstream)
        refresh, wait = dag.get_task("codat_sync.refresh"), dag.get_task("codat_sync.wait")
        assert wait.operator_class is CodatSyncSensor and wait.partial_kwargs["deferrable"] is True
        assert refresh.map_index_template == "{{ task.company_id }}"
        # One extract task per data type, each mapped over the companies: a map as long as the companies.
        for data_type in dag.params["data_types"]:
            plan = dag.get_task(f"codat_sync.{data_type}.plan")
            extract = dag.get_task(f"codat_sync.{data_type}.extract")
            assert {"codat_sync.refresh", "codat_sync.wait", "codat_sync.targets"} <= plan.upstream_task_ids
            assert extract.upstream_task_ids == {plan.task_id}
            assert extract.operator_class is CodatExtractOperator
            assert extract.map_index_template == "{{ task.company_id }} {{ task.data_type }}"
            # A failed company must not stop the others: planning runs whatever happened upstream.
            assert plan.trigger_rule == "all_done"
            assert "codat_sync.summary" in extract.downstream_task_ids
        for task in (refresh, wait, extract):
            assert 0 < task.max_active_tis_per_dag < CODAT_RATE_LIMIT_PER_COMPANY, (dag_id, task.task_id)
        # Each task makes one request at a time: fewer than Codat's 10 concurrent requests per company.
        assert dag.max_active_tasks < CODAT_RATE_LIMIT_PER_COMPANY
        for task_id in ("codat_sync.wait", "codat_sync.summary"):
            assert dag.get_task(task_id).trigger_rule == "all_done", (dag_id, task_id)
        # The summary is a leaf, so a failed company fails the run.
        assert dag.get_task("codat_sync.summary").downstream_task_ids == set()


def test_monthly_ends_with_the_relink_report_beside_the_summary(dags):
    dag = dags["codat_sync_monthly"]
    report = dag.get_task("relink_report")
    assert report.upstream_task_ids == {f"codat_sync.{t}.extract" for t in dag.params["data_types"]}
    assert report.downstream_task_ids == set()
    assert {t.task_id for t in dag.leaves} == {"relink_report", "codat_sync.summary"}
    for dag_id in ("codat_sync_hourly", "codat_sync_daily", "codat_sync_weekly"):
        assert "relink_report" not in dags[dag_id].task_ids


def test_the_report_gate_checks_freshness_before_computing(dags):
    dag = dags["codat_ar_report"]
    gate = dag.get_task("report.freshness_gate")
    assert isinstance(gate, CodatFreshnessSensor)
    assert gate.max_skew == 3600 and gate.data_types == dag.get_task("sync_ar_types.targets").op_args[1]
    assert "report.accounts_receivable" in gate.downstream_task_ids
    assert "sync_ar_types.invoices.extract" in dag.task_ids  # built with codat_sync_task_group
