"""The request budget against the simulator, which enforces Codat's limits: no 429 from the per-minute or the
per-company limit however hard the tasks push, and a company sync that runs the daily quota out pauses until
the reset and carries on, landing everything once."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from airflow_provider_codat.hooks.codat import CodatHook
from airflow_provider_codat.operators.company import CodatCompanySyncOperator
from airflow_provider_codat.version_compat import TaskDeferred
from tests.extract.conftest import read_records, truth, versions
from tests.sync.conftest import connection_json


def _in_threads(count: int, work) -> list:
    results: list = []

    def one() -> None:
        results.append(work())

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


@pytest.mark.codat_simulator(companies=2, records=5, requests_per_minute=36)
def test_a_burst_waits_for_the_per_minute_budget_instead_of_meeting_a_429(codat_simulator, monkeypatch):
    sim = codat_simulator
    # The budget at the simulator's own limit: 36 a minute, 3 in each 5 seconds.
    monkeypatch.setenv(
        "AIRFLOW_CONN_CODAT_DEFAULT", connection_json(sim, requests_per_minute=36, max_retries=0)
    )
    company = sim.control.linked_company_ids()[0]
    sim.control.reset_request_log()
    started = time.monotonic()
    answers = _in_threads(5, lambda: CodatHook().get_company(company)["id"])
    elapsed = time.monotonic() - started
    assert answers == [company] * 5  # no request failed (the hook retries nothing here)
    limits = sim.control.rate_limits()
    assert limits["rejected"]["minute"] == 0 and limits["busiest_minute"] == 5
    assert elapsed >= 4.5  # 3 at once, the other 2 after 5 s


@pytest.mark.codat_simulator(companies=2, records=5, concurrent_per_company=2)
def test_requests_in_flight_per_company_stay_within_its_places(codat_simulator, monkeypatch):
    sim = codat_simulator
    monkeypatch.setenv(
        "AIRFLOW_CONN_CODAT_DEFAULT", connection_json(sim, concurrent_requests_per_company=2, max_retries=0)
    )
    company = sim.control.linked_company_ids()[0]
    sim.control.add_fault("latency", path="/dataStatus$", delay=0.3, times=None)
    answers = _in_threads(6, lambda: bool(CodatHook().get_data_status(company)))
    assert answers == [True] * 6
    limits = sim.control.rate_limits()
    assert limits["rejected"]["concurrent"] == 0
    assert limits["peak_in_flight"][company] == 2  # used fully, never past


TYPES = ["invoices", "payments", "bills", "customers"]


@pytest.mark.codat_simulator(companies=2, records=10, sync_seconds=0.5)
def test_a_spent_quota_parks_the_company_sync_until_the_reset_and_it_lands_everything_once(
    codat_simulator, monkeypatch, tmp_path
):
    sim = codat_simulator
    monkeypatch.setenv(
        "AIRFLOW_CONN_CODAT_DEFAULT", connection_json(sim, quota_reserve=2, max_retries=0, timeout=5)
    )
    company = sim.control.linked_company_ids()[0]
    sim.control.set_rate_limits(daily_quota=9, quota_period_seconds=4)
    sim.control.reset_request_log()
    op = CodatCompanySyncOperator(
        task_id="sync",
        company_id=company,
        data_types=TYPES,
        destination=str(tmp_path),
        deferrable=False,
        poll_interval=0.5,
    )
    context = _context()
    pauses, call = 0, lambda: op.execute(context)
    while True:
        asked = datetime.now(UTC)
        try:
            result = call()
            break
        except TaskDeferred as deferred:
            pauses += 1
            assert pauses < 10, "the sync never finished"
            moment = deferred.trigger.serialize()[1]["moment"]
            # Parked for a while; that it is not before the reset shows below: no request met the spent quota.
            assert moment > asked
            time.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()))
            state = deferred.kwargs["state"]
            call = lambda state=state: op.execute_after_quota_reset(context, event=None, state=state)  # noqa: E731
    assert pauses >= 1
    assert {outcome["status"] for outcome in result.values()} == {"extracted"}
    for data_type in TYPES:
        records = read_records(Path(tmp_path) / company / data_type)
        assert sorted(versions(records)) == sorted(truth(sim.control, company, data_type)), data_type
    log = sim.control.request_log()
    assert [entry for entry in log if entry.get("limit")] == []  # the budget stopped short of every 429
    queued = [entry["path"] for entry in log if "/data/queue/" in entry["path"]]
    assert sorted(queued) == sorted(set(queued))  # no type refreshed twice across the pauses


class _TI:
    def __init__(self) -> None:
        self.xcoms: dict = {}
        self.try_number, self.map_index = 1, -1

    def xcom_push(self, key, value) -> None:
        self.xcoms[key] = value

    def xcom_pull(self, task_ids, key, map_indexes):
        return self.xcoms.get(key)


def _context() -> dict:
    return {"ti": _TI(), "run_id": "manual__quota", "dag_run": None}
