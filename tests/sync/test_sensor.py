"""CodatSyncSensor and CodatFreshnessSensor over real HTTP to the simulator, on simulated time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from airflow_provider_codat.errors import CodatSyncFailedError as CodatSyncFailed
from airflow_provider_codat.hooks.codat import CodatHook
from airflow_provider_codat.operators.refresh import CodatQueueDataTypesOperator
from airflow_provider_codat.sensors.freshness import CodatFreshnessSensor
from airflow_provider_codat.sensors.sync import CodatSyncSensor
from airflow_provider_codat.timestamps import parse_timestamp
from airflow_provider_codat.triggers.sync import CodatSyncTrigger
from airflow_provider_codat.version_compat import (
    AirflowRescheduleException,
    AirflowSensorTimeout,
    TaskDeferred,
)
from tests.moments import MOMENTS
from tests.sync.conftest import FakeTI, requests

pytestmark = pytest.mark.codat_simulator(sync_seconds=60)

TWENTY = [
    "invoices", "bills", "customers", "suppliers", "journalEntries", "journals", "payments", "billPayments",
    "creditNotes", "billCreditNotes", "taxRates", "items", "paymentMethods", "purchaseOrders", "salesOrders",
    "trackingCategories", "chartOfAccounts", "company", "balanceSheet", "profitAndLoss",
]  # fmt: skip


@pytest.fixture
def hook(sim):
    h = CodatHook()
    yield h
    h.close()


def refresh(company_id, context, *types):
    return CodatQueueDataTypesOperator(task_id="q", company_id=company_id, data_types=list(types)).execute(
        context
    )


def test_sensor_does_not_pass_on_the_previous_complete_sync(sim, sim_clock, company_id, context, hook):
    previous = hook.get_data_status(company_id)["invoices"]
    ticket = refresh(company_id, context, "invoices")
    sim.control.reset_request_log()
    outcomes = CodatSyncSensor(task_id="s", ticket=ticket).execute(context)
    assert sim_clock.offset >= 60, "passed before the new sync could have finished"
    assert outcomes["invoices"]["dataset_id"] == ticket["datasets"]["invoices"] != previous["latestSyncId"]
    assert parse_timestamp(outcomes["invoices"]["last_successful_sync"]) > parse_timestamp(
        previous["lastSuccessfulSync"]
    )
    # dataStatus named our dataset while it ran: no history call was needed.
    assert requests(sim, "GET", "/data/history") == []


def test_sensor_without_ticket_waits_for_a_sync_after_synced_after(sim, sim_clock, company_id, context):
    synced_after = sim.control.now()
    refresh(company_id, context, "invoices", "bills")
    sensor = CodatSyncSensor(
        task_id="s", company_id=company_id, data_types=["invoices", "bills"], synced_after=synced_after
    )
    outcomes = sensor.execute(context)
    assert sim_clock.offset >= 60
    for outcome in outcomes.values():
        assert outcome["status"] == "Complete"
        assert parse_timestamp(outcome["last_successful_sync"]) >= parse_timestamp(synced_after)


def test_sensor_joined_in_progress_sync(sim, sim_clock, company_id, context, hook):
    running = hook.queue_data_type(company_id, "payments")["id"]
    sim_clock.sleep(30)
    ticket = refresh(company_id, context, "payments")
    assert ticket["joined"] == ["payments"]
    outcomes = CodatSyncSensor(task_id="s", ticket=ticket).execute(context)
    assert outcomes["payments"]["dataset_id"] == running
    assert outcomes["payments"]["status"] == "Complete"


def test_sensor_fails_with_every_failed_type_and_codat_messages(sim, sim_clock, company_id, context):
    sim.control.fail_next_sync(
        company_id, "payments", status="FetchError", error_message="QuickBooks timed out"
    )
    sim.control.fail_next_sync(
        company_id, "bills", status="RateLimitError", error_message="Xero said slow down"
    )
    ticket = refresh(company_id, context, "invoices", "payments", "bills")
    with pytest.raises(CodatSyncFailed) as raised:
        CodatSyncSensor(task_id="s", ticket=ticket).execute(context)
    message = str(raised.value)
    assert "payments: FetchError" in message and "QuickBooks timed out" in message
    assert "bills: RateLimitError" in message and "Xero said slow down" in message
    assert "invoices" not in message


def test_sensor_auth_error_on_a_deauthorized_connection(sim, sim_clock, context):
    company_id = sim.control.deauthorized_company_ids()[0]
    ticket = refresh(company_id, context, "invoices")
    with pytest.raises(CodatSyncFailed, match="invoices: AuthError.*re-link"):
        CodatSyncSensor(task_id="s", ticket=ticket).execute(context)


def test_not_supported_is_a_warning_and_fail_on_error_false_returns_outcomes(
    sim, sim_clock, company_id, context, caplog, capsys
):
    banking = sim.control.connection_id(company_id, "Banking")
    not_supported = CodatQueueDataTypesOperator(
        task_id="q", company_id=company_id, data_types=["invoices"], connection_id=banking
    ).execute(context)
    outcomes = CodatSyncSensor(task_id="s", ticket=not_supported).execute(context)
    assert outcomes["invoices"]["status"] == "NotSupported"
    assert "does not support invoices" in caplog.text + capsys.readouterr().out

    sim.control.fail_next_sync(company_id, "bills", status="FetchError", error_message="boom")
    ticket = refresh(company_id, context, "bills", "customers")
    outcomes = CodatSyncSensor(task_id="s2", ticket=ticket, fail_on_error=False).execute(context)
    assert outcomes["bills"] == {
        "status": "FetchError",
        "dataset_id": ticket["datasets"]["bills"],
        "last_successful_sync": outcomes["bills"]["last_successful_sync"],
        "error_message": "boom",
    }
    assert outcomes["customers"]["status"] == "Complete"


def test_timeout_says_how_long_and_what_is_still_running(sim, sim_clock, company_id, context):
    sim.control.set_sync_seconds(3600)
    ticket = refresh(company_id, context, "invoices", "bills")
    sensor = CodatSyncSensor(task_id="s", ticket=ticket, timeout=300)
    with pytest.raises(AirflowSensorTimeout, match=r"after 300 s.*bills \(\w+\), invoices \(\w+\)"):
        sensor.execute(context)
    assert 295 <= sim_clock.offset < 310


def test_reschedule_mode_keeps_the_deadline_of_the_first_try(sim, sim_clock, company_id, hook):
    sim.control.set_sync_seconds(3600)
    ticket = refresh(company_id, {"ti": FakeTI()}, "invoices")
    sensor = CodatSyncSensor(task_id="s", ticket=ticket, mode="reschedule", timeout=600)
    with pytest.raises(AirflowRescheduleException) as raised:
        sensor.execute({"ti": FakeTI()})
    delay = (raised.value.reschedule_date - datetime.now(tz=UTC)).total_seconds()
    assert 3 < delay <= 5.5
    # A later reschedule of the same try: the wait began long ago, so the interval has grown...
    first = datetime.fromtimestamp(sim_clock.now(), tz=UTC) - timedelta(seconds=100)
    with pytest.raises(AirflowRescheduleException) as raised:
        sensor.execute({"ti": FakeTI(first_reschedule=first)})
    delay = (raised.value.reschedule_date - datetime.now(tz=UTC)).total_seconds()
    assert 100 < delay <= 106
    # ...and once the first try's deadline has passed, it times out without another poke.
    first = datetime.fromtimestamp(sim_clock.now(), tz=UTC) - timedelta(seconds=601)
    sim.control.reset_request_log()
    with pytest.raises(AirflowSensorTimeout, match="after 601 s"):
        sensor.execute({"ti": FakeTI(first_reschedule=first)})
    assert requests(sim) == []


def test_deferrable_checks_once_then_defers_with_an_absolute_deadline(sim, sim_clock, company_id, context):
    ticket = refresh(company_id, context, "invoices")
    sim.control.reset_request_log()
    sensor = CodatSyncSensor(
        task_id="s", ticket=ticket, deferrable=True, timeout=900, poke_interval=7, max_poke_interval=70
    )
    with pytest.raises(TaskDeferred) as raised:
        sensor.execute(context)
    assert len(requests(sim)) == 1
    trigger = raised.value.trigger
    assert isinstance(trigger, CodatSyncTrigger)
    _, kwargs = trigger.serialize()
    assert kwargs["datasets"] == ticket["datasets"]
    assert abs(kwargs["deadline"] - (sim_clock.now() + 900)) < 5
    assert (kwargs["poll_interval"], kwargs["max_poll_interval"]) == (7, 70)
    assert raised.value.method_name == "execute_complete"
    ok = {
        "invoices": {
            "status": "Complete",
            "dataset_id": "d",
            "last_successful_sync": "x",
            "error_message": None,
        }
    }
    assert (
        sensor.execute_complete(context, {"status": "success", "company_id": company_id, "outcomes": ok})
        == ok
    )
    with pytest.raises(AirflowSensorTimeout, match="still running"):
        sensor.execute_complete(
            context, {"status": "timeout", "message": "Timed out after 900 s; still running: x"}
        )
    with pytest.raises(Exception, match="Unexpected event"):
        sensor.execute_complete(context, {"status": "maybe"})


def test_twenty_types_cost_at_most_fifteen_calls_for_a_ten_minute_sync(sim, sim_clock, company_id, context):
    sim.control.set_sync_seconds(600)
    ticket = refresh(company_id, context, *TWENTY)
    sim.control.reset_request_log()
    outcomes = CodatSyncSensor(task_id="s", ticket=ticket, timeout=3600).execute(context)
    assert len(outcomes) == 20
    calls = sim.control.request_count()
    assert calls <= 15, calls


def test_freshness_sensor_names_stale_types(sim, sim_clock, company_id, context, hook):
    sim.control.advance(0)
    sensor = CodatFreshnessSensor(
        task_id="f", company_id=company_id, data_types=["invoices", "bills"], max_age=3600, timeout=0.01,
        poke_interval=0.01,
    )  # fmt: skip
    with pytest.raises(AirflowSensorTimeout, match="not fresh.*invoices"):
        sensor.execute(context)
    sim.control.mutate(company_id, "invoices")
    with pytest.raises(AirflowSensorTimeout, match=r"older than max_age=3600 s: bills"):
        sensor.execute(context)
    sim.control.mutate(company_id, "bills")
    report = sensor.execute(context)
    assert report["invoices"]["fresh"] and report["bills"]["fresh"]
    skewed = CodatFreshnessSensor(
        task_id="f2", company_id=company_id, data_types=["invoices", "bills"], max_skew=60, timeout=0.01,
        poke_interval=0.01,
    )  # fmt: skip
    sim_clock.sleep(120)
    sim.control.mutate(company_id, "invoices")
    with pytest.raises(AirflowSensorTimeout, match=r"max_skew=60 s.*bills \(12\d s behind\)"):
        skewed.execute(context)


def test_data_status_moved_past_the_dataset_history_decides(sim, sim_clock, company_id, context, hook):
    sim.control.fail_next_sync(company_id, "invoices", status="FetchError", error_message="first one failed")
    ticket = refresh(company_id, context, "invoices")
    sim_clock.sleep(61)
    newer = hook.queue_data_type(company_id, "invoices")["id"]  # dataStatus now names the newer sync
    sim.control.reset_request_log()
    outcomes = CodatSyncSensor(task_id="s", ticket=ticket, fail_on_error=False).execute(context)
    assert outcomes["invoices"]["status"] == "FetchError"
    assert outcomes["invoices"]["dataset_id"] == ticket["datasets"]["invoices"] != newer
    assert outcomes["invoices"]["error_message"] == "first one failed"
    assert [r["path"].rsplit("/", 1)[1] for r in requests(sim, "GET", "/data/history/")] == [
        ticket["datasets"]["invoices"]
    ]


def test_empty_ticket_has_nothing_to_wait_for(sim, company_id, context):
    ticket = {"company_id": company_id, "requested_at": "x", "datasets": {}, "joined": []}
    sim.control.reset_request_log()
    assert CodatSyncSensor(task_id="s", ticket=ticket).execute(context) == {}
    assert requests(sim, "GET", "dataStatus") == []


def test_poke_mode_waits_out_transient_errors(sim, sim_clock, company_id, context):
    ticket = refresh(company_id, context, "invoices")
    sim.control.add_fault("server_error", path="dataStatus", status=502, times=2)
    sim.control.add_fault("drop", path="dataStatus", times=1)
    outcomes = CodatSyncSensor(task_id="s", ticket=ticket).execute(context)
    assert outcomes["invoices"]["status"] == "Complete"
    statuses = [r["status"] for r in requests(sim, "GET", "dataStatus")]
    assert statuses.count(502) == 2 and statuses[-1] == 200


def test_sensor_does_not_pass_while_data_status_still_shows_the_previous_sync(
    sim, sim_clock, company_id, context, hook, monkeypatch
):
    stale = hook.get_data_status(company_id)  # the previous sync, Complete
    ticket = refresh(company_id, context, "invoices")
    real = CodatHook.get_data_status
    calls = []

    def lagging(self, company, **kw):
        calls.append(sim_clock.offset)
        # dataStatus keeps showing the previous Complete sync for the first 40 s of the new one.
        return stale if sim_clock.offset < 40 else real(self, company, **kw)

    monkeypatch.setattr(CodatHook, "get_data_status", lagging)
    sim.control.reset_request_log()
    outcomes = CodatSyncSensor(task_id="s", ticket=ticket).execute(context)
    assert sim_clock.offset >= 60
    assert outcomes["invoices"]["dataset_id"] == ticket["datasets"]["invoices"]
    assert outcomes["invoices"]["dataset_id"] != stale["invoices"]["latestSuccessfulSyncId"]
    # History was asked while dataStatus lagged (not on every poll), never after it caught up.
    assert 1 <= len(requests(sim, "GET", "/data/history/")) < len([c for c in calls if c < 40])


def test_poke_does_the_work_and_airflow_drives_the_pace(sim, sim_clock, company_id, context):
    ticket = refresh(company_id, context, "invoices")
    sensor = CodatSyncSensor(task_id="s", ticket=ticket)
    assert not sensor.poke(context)  # one check, on its own, as Airflow's loop calls it
    assert len(requests(sim, "GET", "dataStatus")) == 1
    # exponential_backoff (on by default): doubling from poke_interval, capped by max_wait.
    capped = CodatSyncSensor(task_id="c", ticket=ticket, poke_interval=5, max_wait=20)
    capped.execute(context)
    assert sim_clock.sleeps[:5] == pytest.approx([5, 10, 20, 20, 20], abs=0.5)
    # Without it, Airflow's fixed poke_interval.
    sim_clock.sleeps.clear()
    ticket = refresh(company_id, context, "bills")
    CodatSyncSensor(task_id="f", ticket=ticket, poke_interval=7, exponential_backoff=False).execute(context)
    assert set(sim_clock.sleeps) == {7} and len(sim_clock.sleeps) == 9  # 63 s for a 60 s sync


def test_max_poke_interval_is_the_former_name_of_max_wait(sim):
    sensor = CodatSyncSensor(task_id="s", ticket={}, max_poke_interval=70)
    assert sensor.max_wait == timedelta(seconds=70) and sensor.max_poke_interval == 70


@pytest.mark.parametrize("clock_at", MOMENTS, indirect=True)
def test_waits_and_deadlines_across_every_moment(sim, sim_clock, company_id, context, clock_at):
    start = clock_at.timestamp()  # the stopped clock; sim_clock adds the simulated waiting to it
    ticket = refresh(company_id, context, "invoices")
    assert parse_timestamp(ticket["requested_at"]).timestamp() == start
    outcomes = CodatSyncSensor(task_id="s", ticket=ticket, timeout=300).execute(context)
    finished = parse_timestamp(outcomes["invoices"]["last_successful_sync"]).timestamp()
    assert finished == start + 60  # the 60 s sync, in elapsed seconds over midnight or the DST hour
    # A deadline is absolute epoch seconds: timeout seconds after now, whatever the wall clock does.
    deferred = CodatSyncSensor(
        task_id="d", ticket=refresh(company_id, context, "bills"), deferrable=True, timeout=900
    )
    with pytest.raises(TaskDeferred) as raised:
        deferred.execute(context)
    assert raised.value.trigger.serialize()[1]["deadline"] == sim_clock.now() + 900
    sim.control.set_sync_seconds(3600)
    slow = refresh(company_id, context, "payments")
    with pytest.raises(AirflowSensorTimeout, match="after 300 s"):
        CodatSyncSensor(task_id="t", ticket=slow, timeout=300).execute(context)


@pytest.mark.parametrize("clock_at", MOMENTS, indirect=True)
def test_freshness_is_elapsed_time_across_every_moment(sim, sim_clock, company_id, context, clock_at):
    sim.control.mutate(company_id, "invoices")  # synced at the moment
    # 26 hours later in elapsed time: a local day around a DST switch has 23 or 25 hours, which must not count.
    sensor = CodatFreshnessSensor(
        task_id="f", company_id=company_id, data_types=["invoices"], max_age=timedelta(hours=26), timeout=0.01,
        poke_interval=0.01,
    )  # fmt: skip
    sim_clock.sleep(26 * 3600)
    report = sensor.execute(context)
    assert report["invoices"]["fresh"] and report["invoices"]["age_seconds"] == 26 * 3600
    sim_clock.sleep(1)
    with pytest.raises(AirflowSensorTimeout, match=r"older than max_age=93600 s: invoices \(93601 s old\)"):
        sensor.execute(context)
