"""CodatSyncTrigger over real HTTP to the simulator, on simulated time."""

from __future__ import annotations

import asyncio
import importlib
import json
import time

import pytest

from airflow_provider_codat.hooks._clients import SHARED
from airflow_provider_codat.hooks.codat import CodatHook
from airflow_provider_codat.triggers.sync import CodatSyncTrigger
from tests.moments import MOMENTS
from tests.sync.conftest import requests

pytestmark = pytest.mark.codat_simulator(sync_seconds=60)


async def events_of(trigger: CodatSyncTrigger) -> list[dict]:
    return [event.payload async for event in trigger.run()]


def queue(company_id: str, *types: str) -> dict[str, str]:
    hook = CodatHook()
    try:
        return {t: hook.queue_data_type(company_id, t)["id"] for t in types}
    finally:
        hook.close()


def rebuild(trigger: CodatSyncTrigger) -> CodatSyncTrigger:
    """What the triggerer does after a restart: import the class path, call it with the stored kwargs."""
    classpath, kwargs = trigger.serialize()
    module, name = classpath.rsplit(".", 1)
    stored = json.loads(json.dumps(kwargs))
    return getattr(importlib.import_module(module), name)(**stored)


def test_serialize_round_trip_is_plain_json_with_no_secret(sim, sim_clock, company_id):
    trigger = CodatSyncTrigger(
        company_id=company_id,
        datasets={"invoices": "d1", "payments": "d2"},
        deadline=sim_clock.now() + 600,
        started_at=sim_clock.now(),
        poll_interval=5,
        max_poll_interval=120,
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_codat.triggers.sync.CodatSyncTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert rebuild(trigger).serialize() == (classpath, kwargs)
    assert kwargs["deadline"] == trigger.deadline and kwargs["codat_conn_id"] == "codat_default"
    assert sim.api_key not in json.dumps(kwargs)


async def test_success_is_one_event_with_outcomes(sim, sim_clock, company_id):
    datasets = queue(company_id, "invoices", "payments")
    trigger = CodatSyncTrigger(
        company_id=company_id, datasets=datasets, deadline=sim_clock.now() + 600, poll_interval=5
    )
    (event,) = await events_of(trigger)
    assert event["status"] == "success"
    assert {t: o["dataset_id"] for t, o in event["outcomes"].items()} == datasets
    assert all(o["status"] == "Complete" for o in event["outcomes"].values())
    assert sim_clock.offset >= 60


async def test_restart_mid_wait_resumes_the_same_wait_and_deadline(sim, sim_clock, company_id):
    datasets = queue(company_id, "invoices")
    started = sim_clock.now()
    first = CodatSyncTrigger(
        company_id=company_id, datasets=datasets, deadline=started + 600, started_at=started, poll_interval=5
    )
    sim_clock.pause_at = 30
    task = asyncio.ensure_future(first.run().__anext__())
    # Let it poll a few times, then "stop the triggerer" mid-wait.
    give_up = time.monotonic() + 60  # simulated time: only a few requests, but the machine may be busy
    while not sim_clock.paused and time.monotonic() < give_up:
        await asyncio.sleep(0.01)
    assert sim_clock.paused, "the trigger never reached the simulated 30 s"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # A trigger cancelled mid-wait (triggerer stopping, task cleared) gives its shared client back.
    assert SHARED.open_clients() == 0
    polls_before = len(requests(sim, "GET", "dataStatus"))
    # The task polled at 0 before deferring; the trigger's first poll comes 5 to 10 s in, the next ones
    # doubling (each stretched by up to a quarter, fixed per wait); it is stopped past 30 s.
    assert polls_before in (2, 3) and 30 <= sim_clock.offset < 60, sim_clock.sleeps
    assert 5 <= sim_clock.sleeps[0] < 10
    sim_clock.pause_at = None

    second = rebuild(first)
    assert second.deadline == first.deadline and second.started_at == started
    (event,) = await events_of(second)
    assert event["status"] == "success"
    assert event["outcomes"]["invoices"]["dataset_id"] == datasets["invoices"]
    # The pace carries on from the original start, not from the restart.
    assert event["waited_seconds"] >= 60


async def test_deadline_in_the_past_times_out_at_once_without_a_call(sim, sim_clock, company_id):
    datasets = queue(company_id, "invoices")
    sim.control.reset_request_log()
    trigger = CodatSyncTrigger(
        company_id=company_id,
        datasets=datasets,
        deadline=sim_clock.now() - 1,
        started_at=sim_clock.now() - 3600,
    )
    (event,) = await events_of(trigger)
    assert event["status"] == "timeout"
    assert "3600 s" in event["message"] and "invoices" in event["message"]
    assert sim.control.request_log() == []


async def test_timeout_names_the_running_types(sim, sim_clock, company_id):
    sim.control.set_sync_seconds(3600)
    datasets = queue(company_id, "invoices", "bills")
    trigger = CodatSyncTrigger(
        company_id=company_id, datasets=datasets, deadline=sim_clock.now() + 120, poll_interval=5
    )
    (event,) = await events_of(trigger)
    assert event["status"] == "timeout"
    assert event["pending"] == {"bills": "Queued", "invoices": "Queued"}
    assert "Timed out after 120 s" in event["message"]
    assert "bills (Queued), invoices (Queued)" in event["message"]


async def test_transient_errors_are_retried_not_fatal(sim, sim_clock, company_id):
    datasets = queue(company_id, "invoices")
    sim.control.add_fault("server_error", path="dataStatus", status=503, times=2)
    sim.control.add_fault("rate_limit", path="dataStatus", retry_after=1, times=1)
    sim.control.add_fault("drop", path="dataStatus", times=1)
    trigger = CodatSyncTrigger(
        company_id=company_id, datasets=datasets, deadline=sim_clock.now() + 600, poll_interval=5
    )
    (event,) = await events_of(trigger)
    assert event["status"] == "success"
    statuses = [r["status"] for r in requests(sim, "GET", "dataStatus")]
    assert 503 in statuses and 429 in statuses


async def test_a_permanent_error_is_an_error_event(sim, sim_clock, company_id):
    # A dataset id Codat does not know: 404 from data/history, not worth waiting out.
    trigger = CodatSyncTrigger(
        company_id=company_id,
        datasets={"invoices": "00000000-0000-4000-8000-000000000000"},
        deadline=sim_clock.now() + 600,
    )
    (event,) = await events_of(trigger)
    assert event["status"] == "error"
    assert "404" in event["message"]


async def test_failed_sync_event_carries_codat_message(sim, sim_clock, company_id):
    sim.control.fail_next_sync(
        company_id, "payments", status="FetchError", error_message="QuickBooks timed out"
    )
    datasets = queue(company_id, "invoices", "payments")
    trigger = CodatSyncTrigger(company_id=company_id, datasets=datasets, deadline=sim_clock.now() + 600)
    (event,) = await events_of(trigger)
    assert event["status"] == "failed"
    assert event["outcomes"]["payments"]["error_message"] == "QuickBooks timed out"
    assert "payments: FetchError" in event["message"] and "QuickBooks timed out" in event["message"]


@pytest.mark.parametrize("clock_at", MOMENTS, indirect=True)
async def test_trigger_timers_run_on_elapsed_time_across_every_moment(sim, sim_clock, company_id, clock_at):
    datasets = queue(company_id, "invoices")
    trigger = CodatSyncTrigger(company_id=company_id, datasets=datasets, deadline=sim_clock.now() + 600)
    assert trigger.started_at == clock_at.timestamp()  # the default start is now, as epoch seconds
    (event,) = await events_of(trigger)
    assert event["status"] == "success" and 60 <= event["waited_seconds"] < 300
    # After a triggerer restart the stored epoch deadline still holds: no second wait of the same length.
    sim.control.set_sync_seconds(3600)
    slow = CodatSyncTrigger(
        company_id=company_id, datasets=queue(company_id, "bills"), deadline=sim_clock.now() + 120
    )
    (event,) = await events_of(rebuild(slow))
    assert event["status"] == "timeout" and "Timed out after 120 s" in event["message"]


@pytest.mark.parametrize(("settle", "earliest"), [(None, 10.0), ("25", 25.0), ("0", 0.0)])
async def test_the_event_waits_until_the_scheduler_has_seen_the_worker_exit(
    sim, sim_clock, company_id, monkeypatch, settle, earliest
):
    # A sync already finished when the wait began (its start long past): the answer is known at the first poll,
    # but a trigger under a scheduler holds it for the settling time (Airflow may otherwise fail the task).
    sim.control.set_sync_seconds(1)
    datasets = queue(company_id, "invoices")
    sim_clock.sleep(5)
    if settle is None:
        monkeypatch.delenv("CODAT_TRIGGER_SETTLE_SECONDS", raising=False)
    else:
        monkeypatch.setenv("CODAT_TRIGGER_SETTLE_SECONDS", settle)
    trigger = CodatSyncTrigger(
        company_id=company_id,
        datasets=datasets,
        deadline=sim_clock.now() + 600,
        started_at=sim_clock.now() - 60,
    )
    fired = sim_clock.now()
    (event,) = await events_of(trigger)
    assert event["status"] == "success"
    assert earliest <= sim_clock.now() - fired < earliest + 1
