"""The portfolio path against the simulator: a window reads each changed type once with no dataStatus and no
refresh, merges every company into one Delta commit per type, and the sweep catches up a day of lost webhooks
at no more than a normal day's cost, without reading again what the webhooks landed."""

from __future__ import annotations

import pytest
from deltalake import DeltaTable

from airflow_provider_codat.datatypes import get_data_type
from airflow_provider_codat.hooks.codat import CodatHook
from airflow_provider_codat.portfolio.marks import fold_marks, read_marks
from airflow_provider_codat.portfolio.sweep import suspect_companies, sweep_companies
from airflow_provider_codat.portfolio.window import (
    company_batches,
    extract_companies,
    finish_window,
    window_changes,
)
from airflow_provider_codat.tables import key as k
from tests.portfolio.day import DAY, Deliveries, requests_by_endpoint, schedule_daily

TYPES = ["invoices", "payments", "bankTransactions"]
SIM = {"scheduled_syncs": True, "sync_seconds": 60, "companies": 4, "records": 12}


def run_window(hook, extras, destination, run_id, batch_size=2):
    changes = window_changes(extras, TYPES)
    results = [
        extract_companies(hook, batch, destination=destination, run_id=run_id)
        for batch in company_batches(changes, batch_size)
    ]
    return changes, finish_window(results, destination=destination, run_id=run_id)


def run_sweep(hook, destination, run_id):
    marks, _ = read_marks(destination)
    suspects = suspect_companies(list(hook.list_companies(page_size=5000)), marks, TYPES)
    result = sweep_companies(hook, suspects, TYPES, destination=destination, run_id=run_id)
    summary = finish_window([result], destination=destination, run_id=run_id)
    fold_marks(destination)
    return suspects, result, summary


def merges(destination, data_type):
    table = DeltaTable(f"{destination}/_tables/{data_type}")
    return sum(1 for entry in table.history() if entry.get("operation") == "MERGE")


def live_ids(sim, company_ids, data_type):
    """The ids of the records the simulator holds as not deleted, for ``company_ids``."""
    state = sim.state
    found = set()
    for (company, key, _conn, _account), collection in state._collections.items():
        if company in company_ids and key == data_type:
            for record in collection.records.values():
                if not (record.get("metadata") or {}).get("isDeleted"):
                    found.add((company, record["id"]))
    return found


def table_ids(destination, data_type):
    rows = DeltaTable(f"{destination}/_tables/{data_type}").to_pyarrow_table(columns=[k.COMPANY, "id"])
    return set(zip(rows[k.COMPANY].to_pylist(), rows["id"].to_pylist(), strict=True))


def assert_tables_match(sim, destination, companies):
    """Each table holds Codat's live records of ``companies``: exactly, for the types whose deletions Codat
    flags; bank transactions Codat drops leave no trace (the weekly reconcile removes them), so at least."""
    for key in TYPES:
        live, held = live_ids(sim, set(companies), key), table_ids(destination, key)
        if get_data_type(key).has_deleted_flag:
            assert held == live, key
        else:
            assert live <= held, key


@pytest.fixture
def destination(tmp_path):
    return f"file://{tmp_path}/landing"


@pytest.mark.codat_simulator(**SIM)
def test_a_window_reads_each_changed_type_once_and_commits_once_per_type(sim, destination):
    companies = schedule_daily(sim, TYPES)
    deliveries = Deliveries(sim.state)
    hook = CodatHook()
    sim.control.advance(DAY + 120)  # every company's three types sync once, each at its company's phase
    extras = deliveries.extras(deliveries.take())
    sim.control.reset_request_log()
    changes, summary = run_window(hook, extras, destination, "window_1")
    assert [c["company_id"] for c in changes] == sorted(companies)
    assert all(c["changed"] == sorted(TYPES) for c in changes)
    log = sim.control.request_log()
    counts = requests_by_endpoint(log)
    # No refresh, no dataStatus: the webhook says the sync completed. One read per changed type, pages of
    # 5,000, plus what bank transactions need to name their scopes (connections, bank accounts).
    assert counts["dataStatus"] == 0 and counts["queue"] == 0
    assert counts["invoices"] == counts["payments"] == len(companies)
    # The connection comes from the webhook: no listing of connections; bank accounts are listed.
    assert counts["connections"] == 0 and counts["bankAccounts"] == len(companies)
    reads = [e for e in log if e["path"].rsplit("/", 1)[-1] in TYPES]
    assert all("pageSize=5000" in e["query"] for e in reads)
    # Four companies, three types: one Delta commit per type for the whole window.
    assert summary["companies"] == len(companies) and summary["failures"] == []
    assert {key: merges(destination, key) for key in TYPES} == dict.fromkeys(TYPES, 1)
    assert_tables_match(sim, destination, companies)
    # A second window: one more commit per type, the tables still equal to Codat's data.
    sim.control.advance(DAY)
    run_window(hook, deliveries.extras(deliveries.take()), destination, "window_2")
    assert {key: merges(destination, key) for key in TYPES} == dict.fromkeys(TYPES, 2)
    assert_tables_match(sim, destination, companies)


@pytest.mark.codat_simulator(**SIM)
def test_the_sweep_catches_up_a_day_of_lost_webhooks_at_a_days_cost(sim, destination):
    companies = schedule_daily(sim, TYPES)
    deliveries = Deliveries(sim.state)
    hook = CodatHook()
    # The first sweep lands every company's history (the deployment's backfill; here also the company whose
    # connection needs re-linking, which Codat no longer syncs and no webhook will name).
    first, _, _ = run_sweep(hook, destination, "sweep_0")
    assert len(first) == len(sim.state.companies)
    sim.control.advance(DAY + 120)
    sim.control.reset_request_log()
    run_window(hook, deliveries.extras(deliveries.take()), destination, "day_1")
    webhook_day = sum(requests_by_endpoint(sim.control.request_log()).values())

    # The sweep after a day the webhooks landed: nothing suspect, nothing read again, the listing alone.
    sim.control.reset_request_log()
    suspects, _, _ = run_sweep(hook, destination, "sweep_1")
    assert suspects == []
    assert requests_by_endpoint(sim.control.request_log()) == {"companies": 1}

    # Day 2: the receiver is down longer than Codat retries: every message is lost.
    sim.control.advance(DAY)
    assert deliveries.take()  # composed, never delivered
    sim.control.reset_request_log()
    suspects, result, summary = run_sweep(hook, destination, "sweep_2")
    assert sorted(s["company_id"] for s in suspects) == sorted(companies)
    assert result["caught_up"] == {c: sorted(TYPES) for c in companies}
    counts = requests_by_endpoint(sim.control.request_log())
    assert counts["dataStatus"] == 0 and counts["queue"] == 0 and counts["connections"] == 0
    # No more than a normal day's cost: the webhook day's reads (every type changed), and the listing.
    assert sum(counts.values()) <= webhook_day + 1
    # Everything of the lost day is in the tables, one commit per type for the sweep.
    assert_tables_match(sim, destination, list(sim.state.companies))
    assert {key: merges(destination, key) for key in TYPES} == dict.fromkeys(TYPES, 3)

    # The next sweep reads nothing again; marks were folded into one file.
    sim.control.reset_request_log()
    assert run_sweep(hook, destination, "sweep_3")[0] == []
    assert requests_by_endpoint(sim.control.request_log()) == {"companies": 1}
    marks, windows = read_marks(destination)
    assert windows == [] and set(marks) == set(sim.state.companies)


def test_a_company_is_polled_only_when_codat_synced_after_what_we_heard():
    company = "0498e921-9b53-4396-a412-4f2f5983b0a2"
    day_1, day_2 = "2026-12-07T10:00:00.0000000Z", "2026-12-08T10:00:00.0000000Z"
    heard = {"invoices": day_2, "payments": "2026-12-08T10:00:03.0000000Z"}

    def suspects(marks, last_sync=day_2):
        listed = [{"id": company.upper(), "lastSync": last_sync}]
        return [
            s["company_id"] for s in suspect_companies(listed, {company: marks}, ["invoices", "payments"])
        ]

    assert suspects(heard, "2026-12-08T10:00:03.0000000Z") == []  # one round, seconds apart: all heard
    assert suspects(heard, "2026-12-09T10:00:00.0000000Z") == [company]  # synced after the last message
    assert suspects({"invoices": day_2}) == [company]  # a type never heard of
    assert suspects({"invoices": day_2, "payments": day_1}) == [company]  # payments' day-2 message lost
    assert suspect_companies([{"id": company, "lastSync": None}], {}, ["invoices"]) == []  # never synced
