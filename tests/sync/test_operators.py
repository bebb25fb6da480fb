"""The refresh operators and the company list, over real HTTP to the simulator."""

from __future__ import annotations

import pytest

from airflow_provider_codat.errors import CodatAPIError, CodatDatasetInProgressError
from airflow_provider_codat.errors import CodatSyncFailedError as CodatSyncFailed
from airflow_provider_codat.hooks.codat import CodatHook
from airflow_provider_codat.links import COMPANY_URL_XCOM_KEY, CodatCompanyLink
from airflow_provider_codat.operators.companies import CodatListCompaniesOperator
from airflow_provider_codat.operators.refresh import (
    CodatQueueDataTypesOperator,
    CodatRefreshAllDataOperator,
    CodatSyncTimeout,
)
from tests.sync.conftest import requests

pytestmark = pytest.mark.codat_simulator(sync_seconds=60)


@pytest.fixture
def hook(sim):
    h = CodatHook()
    yield h
    h.close()


def history_of(hook, company_id, dataset_id):
    return hook.get_pull_operation(company_id, dataset_id)


def test_queue_ticket_names_the_new_datasets_and_pushes_the_link(sim, sim_clock, company_id, context, hook):
    before = hook.get_data_status(company_id)
    ticket = CodatQueueDataTypesOperator(
        task_id="q", company_id=company_id, data_types=["invoices", "payments"]
    ).execute(context)
    assert ticket["company_id"] == company_id and ticket["joined"] == []
    assert set(ticket["datasets"]) == {"invoices", "payments"}
    after = hook.get_data_status(company_id)
    for data_type, dataset_id in ticket["datasets"].items():
        assert dataset_id != before[data_type]["latestSyncId"]
        assert after[data_type]["latestSyncId"] == dataset_id
        assert history_of(hook, company_id, dataset_id)["status"] == "Queued"
    assert len(requests(sim, "POST", "/data/queue/")) == 2
    url = context["ti"].xcoms[COMPANY_URL_XCOM_KEY]
    assert url == f"https://app.codat.io/companies/{company_id}/summary"
    assert context["ti"].xcoms[CodatCompanyLink().xcom_key] == url


@pytest.mark.parametrize("in_progress_status", [400, 409])
def test_queue_joins_a_running_sync(sim, sim_clock, company_id, context, hook, in_progress_status):
    sim.control.set_in_progress_status(in_progress_status)
    running = hook.queue_data_type(company_id, "invoices")["id"]
    ticket = CodatQueueDataTypesOperator(
        task_id="q", company_id=company_id, data_types="invoices,bills"
    ).execute(context)
    assert ticket["datasets"]["invoices"] == running
    assert ticket["joined"] == ["invoices"]
    assert ticket["datasets"]["bills"] != running


def test_queue_fail_mode_raises_with_the_running_dataset_id(sim, sim_clock, company_id, context, hook):
    running = hook.queue_data_type(company_id, "invoices")["id"]
    op = CodatQueueDataTypesOperator(
        task_id="q", company_id=company_id, data_types=["invoices"], if_in_progress="fail"
    )
    with pytest.raises(CodatDatasetInProgressError, match=running):
        op.execute(context)


def test_queue_rejects_unknown_types_before_any_request(sim, company_id, context):
    sim.control.reset_request_log()
    with pytest.raises(ValueError, match="nonsense"):
        CodatQueueDataTypesOperator(task_id="q", company_id=company_id, data_types=["nonsense"]).execute(
            context
        )
    assert requests(sim, "POST") == []


def test_refresh_all_ticket_names_new_datasets_and_joins_running_ones(
    sim, sim_clock, company_id, context, hook
):
    running = hook.queue_data_type(company_id, "payments")["id"]
    sim_clock.sleep(20)  # payments is mid-sync when data/all comes
    before = hook.get_data_status(company_id)
    ticket = CodatRefreshAllDataOperator(task_id="all", company_id=company_id).execute(context)
    assert ticket["datasets"]["payments"] == running
    assert ticket["joined"] == ["payments"]
    assert "purchaseOrders" not in ticket["datasets"]  # not fetched on first link
    after = hook.get_data_status(company_id)
    for data_type, dataset_id in ticket["datasets"].items():
        if data_type == "payments":
            continue
        assert dataset_id != before[data_type]["latestSyncId"], data_type
        assert after[data_type]["latestSyncId"] == dataset_id
    assert {"invoices", "bills", "chartOfAccounts"} <= set(ticket["datasets"])
    assert len(requests(sim, "POST", "/data/all")) == 1


def test_refresh_all_with_data_types_queues_what_data_all_did_not(sim, sim_clock, company_id, context, hook):
    ticket = CodatRefreshAllDataOperator(
        task_id="all", company_id=company_id, data_types=["invoices", "purchaseOrders"]
    ).execute(context)
    assert set(ticket["datasets"]) == {"invoices", "purchaseOrders"}
    queued = requests(sim, "POST", "/data/queue/")
    assert [r["path"].rsplit("/", 1)[1] for r in queued] == ["purchaseOrders"]
    assert history_of(hook, company_id, ticket["datasets"]["purchaseOrders"])["dataType"] == "purchaseOrders"


def test_refresh_all_falls_back_to_history_when_data_status_lags(
    sim, sim_clock, company_id, context, hook, monkeypatch
):
    # A dataStatus that never shows the new syncs: only data/history can name them.
    frozen = hook.get_data_status(company_id)
    monkeypatch.setattr(CodatHook, "get_data_status", lambda self, company, **kw: frozen)
    op = CodatRefreshAllDataOperator(task_id="all", company_id=company_id, data_types=["invoices", "bills"])
    op.reread_delay = 0.01
    ticket = op.execute(context)
    for data_type in ("invoices", "bills"):
        dataset_id = ticket["datasets"][data_type]
        assert dataset_id != frozen[data_type]["latestSyncId"]
        assert history_of(hook, company_id, dataset_id)["dataType"] == data_type
    assert len(requests(sim, "GET", "/data/history")) == 1 + 2  # the list, then the two checks above
    assert requests(sim, "POST", "/data/queue/") == []


def test_wait_for_completion_returns_outcomes(sim, sim_clock, company_id, context):
    ticket = CodatQueueDataTypesOperator(
        task_id="q", company_id=company_id, data_types=["invoices"], wait_for_completion=True
    ).execute(context)
    outcome = ticket["outcomes"]["invoices"]
    assert outcome["status"] == "Complete" and outcome["dataset_id"] == ticket["datasets"]["invoices"]
    assert sim_clock.offset >= 60


def test_wait_for_completion_fails_and_times_out(sim, sim_clock, company_id, context):
    sim.control.fail_next_sync(company_id, "bills", status="MapError", error_message="bad mapping")
    op = CodatQueueDataTypesOperator(
        task_id="q", company_id=company_id, data_types=["bills"], wait_for_completion=True
    )
    with pytest.raises(CodatSyncFailed, match="bills: MapError.*bad mapping"):
        op.execute(context)
    sim.control.set_sync_seconds(7200)
    op = CodatQueueDataTypesOperator(
        task_id="q2", company_id=company_id, data_types=["invoices"], wait_for_completion=True, timeout=600
    )
    with pytest.raises(CodatSyncTimeout, match=r"after 600 s.*invoices \(Queued\)"):
        op.execute(context)


def test_list_companies_filters_on_connection_status(sim, context):
    linked = CodatListCompaniesOperator(task_id="c").execute(context)
    companies = sim.control.companies()
    assert linked and set(linked) <= {c["id"] for c in companies}
    assert len(linked) == len(set(linked))
    deauthorized = CodatListCompaniesOperator(task_id="c", connection_status="Deauthorized").execute(context)
    assert deauthorized == sim.control.deauthorized_company_ids()
    everyone = CodatListCompaniesOperator(task_id="c", connection_status=None).execute(context)
    assert sorted(everyone) == sorted(c["id"] for c in companies)


def test_company_link_reads_the_url_the_task_pushed(monkeypatch):
    from airflow.sdk.execution_time import xcom

    seen = {}

    def get_value(*, ti_key, key):
        seen[key] = ti_key
        return "https://app.codat.io/companies/abc/summary"

    monkeypatch.setattr(xcom.XCom, "get_value", staticmethod(get_value))
    link = CodatCompanyLink()
    assert link.name == "Codat company"
    assert link.get_link(operator=None, ti_key="key") == "https://app.codat.io/companies/abc/summary"
    assert seen == {COMPANY_URL_XCOM_KEY: "key"}
    monkeypatch.setattr(xcom.XCom, "get_value", staticmethod(lambda **kw: None))
    assert link.get_link(operator=None, ti_key="key") == ""


def test_refresh_all_with_a_lost_answer_looks_instead_of_failing(sim, sim_clock, company_id, context, hook):
    # A 503 to data/all is not retried by the hook (Codat may have queued the syncs): the operator looks at
    # dataStatus and history, then queues the listed types that are still missing.
    sim.control.add_fault("server_error", path="/data/all$", status=503, times=1)
    op = CodatRefreshAllDataOperator(task_id="all", company_id=company_id, data_types=["invoices"])
    op.reread_delay = 0.01
    ticket = op.execute(context)
    assert history_of(hook, company_id, ticket["datasets"]["invoices"])["status"] == "Queued"
    assert [r["status"] for r in requests(sim, "POST", "/data/all")] == [503]
    assert len(requests(sim, "POST", "/data/queue/invoices")) == 1
    # Without data types there is nothing to fall back on: the error is raised.
    sim.control.add_fault("server_error", path="/data/all$", status=503, times=1)
    sim.control.complete_running_syncs()
    op = CodatRefreshAllDataOperator(task_id="all2", company_id=company_id)
    op.reread_delay = 0.01
    with pytest.raises(CodatAPIError, match="503"):
        op.execute(context)
