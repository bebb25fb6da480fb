"""CodatHook against the simulator over real HTTP (no respx): paging, every data type, syncs, faults."""

from __future__ import annotations

import email.utils
import json
import time

import pytest

from airflow_provider_codat.datatypes import CATALOGUE, Kind, Scope
from airflow_provider_codat.hooks.codat import CodatAPIError, CodatDatasetInProgressError, CodatHook

UNKNOWN_COMPANY = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
def hook(sim):
    h = CodatHook()
    h.sleeps = []
    h.sleep = h.sleeps.append  # retries happen at once; the waits asked for are recorded
    yield h
    h.close()


def first_company(sim) -> str:
    """The first company has accounting, banking and commerce connections, all linked."""
    company = sim.control.companies()[0]
    assert {c["sourceType"] for c in company["connections"]} == {"Accounting", "Banking", "Commerce"}
    return company["id"]


def ids(records) -> list[str]:
    return [r["id"] for r in records]


@pytest.mark.codat_simulator(companies=7)
def test_list_companies_across_pages(sim, hook):
    companies = list(hook.list_companies(page_size=2))
    assert sorted(ids(companies)) == sorted(c["id"] for c in sim.control.companies())
    assert len(companies) == 7
    pages = [e for e in sim.control.request_log() if e["path"] == "/companies"]
    assert len(pages) == 4  # 2 + 2 + 2 + 1


@pytest.mark.codat_simulator(records=12, sync_seconds=0)
@pytest.mark.parametrize("key", sorted(CATALOGUE))
def test_read_every_catalogue_data_type(sim, hook, key):
    entry = CATALOGUE[key]
    company = first_company(sim)
    connection = (
        sim.control.connection_id(company, entry.source_type) if entry.scope is not Scope.COMPANY else None
    )
    if not entry.fetch_on_first_link:
        hook.queue_data_type(company, key, connection_id=connection)
        sim.control.complete_running_syncs()
    if entry.kind is Kind.SNAPSHOT:
        report = hook.get_report(company, key, connection_id=connection)
        assert isinstance(report, dict) and report
        return
    account = (
        sim.control.bank_account_ids(company, connection)[0] if entry.scope is Scope.BANK_ACCOUNT else None
    )
    truth = sim.control.records(company, key, connection_id=connection, account_id=account)
    assert len(truth) >= 3
    size = 2 if len(truth) < 6 else 5  # always more than one page
    pages = list(hook.iter_pages(company, key, page_size=size, connection_id=connection, account_id=account))
    assert len(pages) == -(-len(truth) // size) and all(len(p) <= size for p in pages)
    got = [r for p in pages for r in p]
    assert sorted(ids(got)) == sorted(ids(truth)) and len(got) == len(truth)


@pytest.mark.codat_simulator(records=30)
def test_filtered_and_ordered_read(sim, hook):
    from airflow_provider_codat.query import all_of, condition

    company = first_company(sim)
    truth = sim.control.records(company, "invoices")
    live = [r for r in truth if not r["metadata"]["isDeleted"]]
    query = all_of(condition("metadata.isDeleted", "!=", True))
    got = [
        r
        for p in hook.iter_pages(company, "invoices", query=query, order_by="-modifiedDate", page_size=7)
        for r in p
    ]
    assert sorted(ids(got)) == sorted(ids(live))
    dates = [r["modifiedDate"] for r in got]
    assert dates == sorted(dates, reverse=True)


def test_data_status_before_and_after_a_queued_sync(sim, hook):
    company = first_company(sim)
    before = hook.get_data_status(company)["invoices"]
    assert before["currentStatus"] == "Complete"
    pull = hook.queue_data_type(company, "invoices")
    assert (
        pull["dataType"] == "invoices"
        and pull["companyId"] == company
        and pull["id"] != before["latestSyncId"]
    )
    during = hook.get_data_status(company)["invoices"]
    assert during["latestSyncId"] == pull["id"]
    assert during["latestSuccessfulSyncId"] == before["latestSuccessfulSyncId"]
    assert during["currentStatus"] != "Complete"
    assert hook.get_pull_operation(company, pull["id"])["isCompleted"] is False
    sim.control.complete_running_syncs()
    after = hook.get_data_status(company)["invoices"]
    assert after["currentStatus"] == "Complete"
    assert after["latestSuccessfulSyncId"] == pull["id"]
    assert after["lastSuccessfulSync"] > before["lastSuccessfulSync"]
    finished = hook.get_pull_operation(company, pull["id"])
    assert finished["status"] == "Complete" and finished["isCompleted"] is True
    assert next(iter(hook.iter_pull_operations(company)))["id"] == pull["id"]  # newest first


def test_refresh_all_queues_the_fetch_on_first_link_types(sim, hook):
    company = first_company(sim)
    before = hook.get_data_status(company)
    assert hook.refresh_all_data(company) is None
    after = hook.get_data_status(company)
    assert after["invoices"]["latestSyncId"] != before["invoices"]["latestSyncId"]
    not_on_first_link = [k for k, e in CATALOGUE.items() if not e.fetch_on_first_link]
    for key in not_on_first_link:  # never synced, and data/all does not queue them
        assert after.get(key, {}).get("latestSyncId") is None


@pytest.mark.parametrize("status", [400, 409])
def test_in_progress_error_names_the_running_dataset(sim, hook, status):
    sim.control.set_in_progress_status(status)
    company = first_company(sim)
    connection = sim.control.connection_id(company, "Accounting")
    pull = hook.queue_data_type(company, "bankAccounts", connection_id=connection)
    with pytest.raises(CodatDatasetInProgressError) as info:
        hook.queue_data_type(company, "bankAccounts", connection_id=connection)
    assert (info.value.status_code, info.value.dataset_id, info.value.data_type) == (
        status,
        pull["id"],
        "bankAccounts",
    )


def test_read_before_first_sync_is_409(sim, hook):
    with pytest.raises(CodatAPIError) as info:
        list(hook.iter_pages(first_company(sim), "purchaseOrders"))
    assert info.value.status_code == 409 and "queue a refresh first" in str(info.value)


def test_unknown_company_is_404(sim, hook):
    with pytest.raises(CodatAPIError) as info:
        hook.get_data_status(UNKNOWN_COMPANY)
    assert info.value.status_code == 404 and info.value.correlation_id


@pytest.mark.codat_simulator(records=40)
def test_faults_are_survived_with_the_data_intact(sim, hook):
    company = first_company(sim)
    path = f"/companies/{company}/data/invoices"
    control = sim.control
    control.add_fault("rate_limit", path=path, times=2, retry_after=3)
    control.add_fault("server_error", path=path, status=502, times=1)
    control.reset_request_log()
    pages = hook.iter_pages(company, "invoices", page_size=10)
    got = next(pages) + next(pages)
    # Mid-way through the list: a 503 with an HTML body, a dropped connection, a 500 with Codat's JSON.
    control.add_fault("server_error", path=path, status=503, times=1)
    control.add_fault("drop", path=path, times=1)
    control.add_fault("server_error", path=path, status=500, times=1)
    got += [r for p in pages for r in p]
    truth = control.records(company, "invoices")
    assert ids(got) == ids(truth)  # same records, same order, none twice
    assert hook.sleeps[:2] == [3.0, 3.0]
    assert len(hook.sleeps) == 6
    statuses = [e["status"] for e in control.request_log()]
    assert statuses.count(429) == 2 and {502, 503, 500} <= set(statuses)


def test_retry_after_http_date_from_the_server(sim, hook):
    company = first_company(sim)
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    sim.control.add_fault("rate_limit", path="dataStatus", retry_after=when)
    assert "invoices" in hook.get_data_status(company)
    assert len(hook.sleeps) == 1 and 25 <= hook.sleeps[0] <= 30


def test_slow_answer_times_out_and_is_retried(sim, monkeypatch):
    conn = json.loads(sim.connection_json)
    conn["extra"] = {"timeout": 0.3}
    monkeypatch.setenv("AIRFLOW_CONN_CODAT_DEFAULT", json.dumps(conn))
    hook = CodatHook()
    hook.sleep = lambda s: None
    company = first_company(sim)
    sim.control.add_fault("latency", path="dataStatus", delay=1.0)
    assert "invoices" in hook.get_data_status(company)
    assert [e["path"].endswith("dataStatus") for e in sim.control.request_log()].count(True) == 2


def test_queue_survives_a_dropped_connection_with_one_sync(sim, hook):
    company = first_company(sim)
    sim.control.add_fault("drop", path="data/queue/invoices", method="POST")
    pull = hook.queue_data_type(company, "invoices")
    assert hook.get_data_status(company)["invoices"]["latestSyncId"] == pull["id"]
    queued = [
        p for p in hook.iter_pull_operations(company, query="dataType=invoices") if not p.get("completed")
    ]
    assert ids(queued) == [pull["id"]]


def test_refresh_all_is_not_repeated_after_a_5xx(sim, hook):
    company = first_company(sim)
    sim.control.add_fault("server_error", path="data/all", status=500)
    with pytest.raises(CodatAPIError) as info:
        hook.refresh_all_data(company)
    assert info.value.status_code == 500
    assert [e["path"].endswith("data/all") for e in sim.control.request_log()].count(True) == 1


def test_bad_key_is_401_and_test_connection_says_so(sim, monkeypatch):
    conn = json.loads(sim.connection_json)
    conn["password"] = "wrong-key-0000"
    monkeypatch.setenv("AIRFLOW_CONN_CODAT_DEFAULT", json.dumps(conn))
    hook = CodatHook()
    with pytest.raises(CodatAPIError) as info:
        hook.get_company(first_company(sim))
    assert info.value.status_code == 401 and "connection `codat_default`" in str(info.value)
    ok, reason = hook.test_connection()
    assert not ok and "401" in reason and "wrong-key-0000" not in reason


def test_test_connection_succeeds_with_one_request(sim, hook):
    sim.control.reset_request_log()
    ok, message = hook.test_connection()
    assert ok and sim.base_url in message
    assert len(sim.control.request_log()) == 1


def test_connections_and_sync_settings(sim, hook):
    company = first_company(sim)
    connections = list(hook.list_connections(company, page_size=1))
    assert sorted(ids(connections)) == sorted(c["id"] for c in sim.control.companies()[0]["connections"])
    assert hook.get_company(company)["id"] == company
    settings = hook.get_sync_settings()
    assert {s["dataType"] for s in settings} >= {"invoices", "company"}
