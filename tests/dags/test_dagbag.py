"""The example DAGs import cleanly and without touching the network, Variables or Connections; they are built
the way the README describes (table rows, chain, labels, bounds, Params). How fast they parse is measured by
``bench/dag_parse.py``, not here."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from airflow.sdk import Asset, BaseHook, Connection, Variable

from airflow_provider_codat.datatypes import CATALOGUE, fetch_on_first_link_types
from airflow_provider_codat.hooks.codat import CodatHook
from airflow_provider_codat.operators.company import CodatCompanySyncOperator
from airflow_provider_codat.operators.tables import CodatForgetCompaniesOperator, CodatMergeTablesOperator
from airflow_provider_codat.sensors.freshness import CodatFreshnessSensor
from airflow_provider_codat.version_compat import DagBag
from tests.moments import MOMENTS

# One worker runs this module: its module-scoped fixture is costly to build (pytest-xdist --dist loadgroup).
pytestmark = pytest.mark.xdist_group("test_dagbag")

DAGS = Path(__file__).resolve().parents[2] / "dags"
SYNC_DAGS = ["codat_sync_hourly", "codat_sync_daily", "codat_sync_weekly", "codat_sync_monthly"]
CODAT_RATE_LIMIT_PER_COMPANY = 10
RUN_LEVEL_TASKS = 20  # the budget: one task per company plus at most this many for the run


def _forbidden(what: str):
    def boom(*args, **kwargs):
        raise AssertionError(f"{what} at parse time")

    return boom


@pytest.fixture(scope="module")
def parsed() -> dict[str, DagBag]:
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
        return {path.name: DagBag(dag_folder=str(path)) for path in sorted(DAGS.glob("*.py"))}
    finally:
        patch.undo()


@pytest.fixture(scope="module")
def dags(parsed) -> dict:
    return {dag_id: dag for bag in parsed.values() for dag_id, dag in bag.dags.items()}


def test_every_dag_file_imports_without_errors_network_variables_or_connections(parsed):
    assert set(parsed) == {
        "codat_sync.py",
        "codat_ar_report.py",
        "codat_on_change.py",
        "codat_on_company_deleted.py",
        "codat_portfolio.py",
    }
    for name, bag in parsed.items():
        assert bag.import_errors == {}, name
        assert bag.dags, f"{name} defines no DAG"


def test_one_dag_per_frequency_from_the_table(dags):
    others = {"codat_ar_report", "codat_on_change", "codat_on_company_deleted"}
    portfolio = {"codat_portfolio_changes", "codat_portfolio_sweep"}
    assert set(SYNC_DAGS) | others | portfolio == set(dags)
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
    refresh = {
        dag_id: dags[dag_id].get_task("codat_sync.sync").partial_kwargs["refresh"] for dag_id in SYNC_DAGS
    }
    assert refresh.pop("codat_sync_weekly") == "all"
    assert set(refresh.values()) == {"queue"}


def test_trigger_form_works_with_the_defaults(dags):
    """Airflow's form requires every Param whose schema does not admit null: with the defaults, each Param has
    a value or admits null, and the defaults validate (the Trigger button is enabled)."""
    for dag_id in [*SYNC_DAGS, "codat_ar_report", "codat_on_company_deleted"]:
        params = dags[dag_id].params
        for key in params:
            param = params.get_param(key)
            types = param.schema.get("type")
            admits_null = "null" in types if isinstance(types, list) else types == "null"
            assert param.value not in (None, "", []) or admits_null, (dag_id, key)
            param.resolve()  # the default is valid
        params.validate()
    for dag_id in SYNC_DAGS:
        params = dags[dag_id].params
        assert {"company_ids", "data_types", "full_refresh", "destination"} <= set(params), dag_id
        assert params["company_ids"] is None and params["destination"] is None  # every company, the Variable
        assert params["full_refresh"] is False
        schema = params.get_param("data_types").schema
        # A multi-select of the table's types: the form shows one for an array with examples.
        assert schema["type"] == "array" and schema["examples"] == params["data_types"]
        assert schema["items"]["enum"] == params["data_types"]


def test_each_sync_dag_is_one_task_per_company_named_after_it(dags):
    for dag_id in SYNC_DAGS:
        dag = dags[dag_id]
        chain = ["portfolio", "codat_sync.batches", "codat_sync.sync", "codat_sync.summary"]
        for upstream, downstream in zip(chain, chain[1:], strict=False):
            assert downstream in dag.get_task(upstream).downstream_task_ids, (dag_id, upstream, downstream)
        sync = dag.get_task("codat_sync.sync")
        assert sync.operator_class is CodatCompanySyncOperator and sync.partial_kwargs["deferrable"] is True
        assert sync.map_index_template == "{{ task.company_name }}"
        assert {outlet.uri for outlet in sync.partial_kwargs["outlets"]} == {
            Asset(f"codat://{t}").uri for t in dag.params["data_types"]
        }
        assert sync.partial_kwargs["max_concurrency"] <= CODAT_RATE_LIMIT_PER_COMPANY
        assert len(dag.task_ids) - 1 <= RUN_LEVEL_TASKS
        assert dag.get_task("codat_sync.summary").trigger_rule == "all_done", dag_id
        # The summary is a leaf, so a failed company fails the run.
        assert dag.get_task("codat_sync.summary").downstream_task_ids == set()


def test_monthly_ends_with_the_relink_report_beside_the_summary(dags):
    dag = dags["codat_sync_monthly"]
    report = dag.get_task("relink_report")
    assert report.upstream_task_ids == {"codat_sync.sync"}
    assert report.downstream_task_ids == set()
    assert {t.task_id for t in dag.leaves} == {"relink_report", "codat_sync.summary", "table_maintenance"}
    for dag_id in ("codat_sync_hourly", "codat_sync_daily", "codat_sync_weekly"):
        assert "relink_report" not in dags[dag_id].task_ids


def test_each_sync_dag_merges_its_run_into_the_tables(dags):
    for dag_id in SYNC_DAGS:
        dag = dags[dag_id]
        tables = dag.get_task("codat_sync.tables")
        assert isinstance(tables, CodatMergeTablesOperator)
        # After every company task, whatever their outcome: those that landed are merged.
        assert "codat_sync.sync" in tables.upstream_task_ids and tables.trigger_rule == "all_done"
        assert [outlet.uri for outlet in tables.outlets] == [
            Asset(f"codat-table://{t}").uri for t in dag.params["data_types"]
        ]
    maintenance = dags["codat_sync_monthly"].get_task("table_maintenance")
    assert maintenance.upstream_task_ids >= {"codat_sync.tables"}
    assert maintenance.op_kwargs["retention_hours"] == 7 * 24
    for dag_id in ("codat_sync_hourly", "codat_sync_daily", "codat_sync_weekly"):
        assert "table_maintenance" not in dags[dag_id].task_ids


def test_the_report_gate_checks_freshness_before_computing(dags):
    dag = dags["codat_ar_report"]
    gate = dag.get_task("report.freshness_gate")
    assert isinstance(gate, CodatFreshnessSensor)
    assert gate.max_skew == 3600 and gate.data_types == dag.get_task("sync_ar_types.batches").op_args[1]
    assert "report.accounts_receivable" in gate.downstream_task_ids
    assert "sync_ar_types.sync" in dag.task_ids  # built with codat_sync_task_group


@pytest.mark.parametrize("clock_at", MOMENTS, indirect=True)
def test_start_dates_are_past_and_schedules_utc_on_every_date(dags, clock_at):
    now = datetime.now(UTC)
    assert now == clock_at.astimezone(UTC)  # time-machine reaches what Airflow calls too
    for dag_id, dag in dags.items():
        # A start date after now would schedule nothing until then (and `dags test` would refuse the run).
        assert dag.start_date <= now, dag_id
        assert dag.start_date.utcoffset() == timedelta(0) and dag.catchup is False, dag_id
        # Cron schedules in UTC: no run skipped or doubled by a DST switch of the machine's local zone.
        zone = getattr(dag.timetable, "timezone", None)  # None: asset-triggered
        assert zone is None or getattr(zone, "name", zone) == "UTC", dag_id


def test_deleted_companies_leave_the_tables_in_a_dag_scheduled_on_their_asset(dags):
    dag = dags["codat_on_company_deleted"]
    assert dag.timetable.asset_condition.uri == Asset("codat://deleted-companies").uri
    assert dag.max_active_runs == 1 and dag.task_ids == ["forget_companies"]
    forget = dag.get_task("forget_companies")
    assert isinstance(forget, CodatForgetCompaniesOperator)
    assert "params.company_ids" in forget.companies  # empty unless given: the triggering events' companies
    assert {outlet.uri for outlet in forget.outlets} == {Asset(f"codat-table://{t}").uri for t in CATALOGUE}
