"""Requests a deferred wait sends from the triggerer reach the health report: the trigger counts its own apart
and hands them over in its event; the company task resuming on a worker reports them with its own."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from airflow_provider_codat.budget.usage import EVENT_KEY, add_counts, count_request, take_counts
from airflow_provider_codat.operators.company import CodatCompanySyncOperator
from airflow_provider_codat.version_compat import TaskDeferred
from tests.sync.conftest import FakeTI

pytestmark = pytest.mark.codat_simulator(companies=3, records=20, sync_seconds=30)


class _DagRun:
    def __init__(self) -> None:
        self.start_date = datetime.now(UTC)


def test_counts_taken_elsewhere_add_to_the_process_counter():
    take_counts()
    count_request(now=60 * 100)
    add_counts({"100": 2, "101": 3})
    assert take_counts() == {100: 3, 101: 3}
    assert take_counts() == {}


def test_a_deferred_company_tasks_report_counts_the_triggers_requests(sim, sim_clock, company_id, tmp_path):
    ti = FakeTI()
    ti.dag_id, ti.task_id = "codat_sync_daily", "sync"
    context = {"ti": ti, "run_id": "manual__deferred", "dag_run": _DagRun()}
    task = CodatCompanySyncOperator(
        task_id="sync",
        company_id=company_id,
        data_types=["invoices"],
        destination=str(tmp_path),
        deferrable=True,
        poll_interval=5,
    )
    take_counts()
    sim.control.reset_request_log()
    with pytest.raises(TaskDeferred) as deferred:
        task.execute(context)
    before = len(sim.control.request_log())

    async def first_event():
        async for event in deferred.value.trigger.run():
            return event.payload

    event = asyncio.run(first_event())
    polls = len(sim.control.request_log()) - before
    assert polls >= 1 and sum(event[EVENT_KEY].values()) == polls
    # Counted apart: the trigger's requests are not in this process's counter, and what the task sent before
    # deferring left with the deferral (its process ends there).
    assert take_counts() == {}
    assert sum(deferred.value.kwargs[EVENT_KEY].values()) == before
    count_request()  # a request of the resumed task's process before it resumes, as a worker's could be
    task.execute_complete(context, event=event, **(deferred.value.kwargs or {}))
    report = ti.xcoms["codat_health"]
    after = len(sim.control.request_log()) - before - polls
    assert sum(report["minutes"].values()) == 1 + before + polls + after
