"""Waits end when they should: on time under faults (real time, a few seconds each), and at once on a malformed
answer or a bad ticket (simulated time)."""

from __future__ import annotations

import asyncio
import time

import pytest

from airflow_provider_codat.errors import CodatAPIError, CodatSyncTimeoutError, CodatValidationError
from airflow_provider_codat.operators.refresh import CodatQueueDataTypesOperator
from airflow_provider_codat.sensors.sync import CodatSyncSensor
from airflow_provider_codat.triggers.sync import CodatSyncTrigger
from airflow_provider_codat.version_compat import AirflowSkipException
from tests.sync.conftest import FakeTI, connection_json, requests

pytestmark = pytest.mark.codat_simulator(sync_seconds=3600)

# Each fault makes every dataStatus answer useless: a 429 whose Retry-After (60 s) is well inside the hook's
# max_retry_time, a body that trickles one byte every half second, a connection dropped mid-answer.
FAULTS = {
    "rate_limit": {"retry_after": 60},
    "trickle": {"delay": 0.5},
    "drop": {},
}
WAIT = 2.0  # seconds each wait may take
SLACK = 2.0  # "a few seconds" past the deadline, at most


@pytest.fixture
def patient(codat_simulator, monkeypatch):
    """``codat_default`` with the defaults that let a single request outlive a short wait: 30 s timeout,
    five retries."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_CODAT_DEFAULT", connection_json(codat_simulator, timeout=30, max_retries=5)
    )
    return codat_simulator


def queue(sim, company_id: str) -> dict:
    return CodatQueueDataTypesOperator(task_id="q", company_id=company_id, data_types=["invoices"]).execute(
        {"ti": FakeTI()}
    )


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_the_sensor_ends_on_time_under_a_fault(patient, fault):
    company_id = patient.control.linked_company_ids()[0]
    ticket = queue(patient, company_id)
    patient.control.add_fault(fault, path="dataStatus$", times=None, **FAULTS[fault])
    sensor = CodatSyncSensor(task_id="s", ticket=ticket, timeout=WAIT, poke_interval=0.5)
    started = time.monotonic()
    with pytest.raises(CodatSyncTimeoutError, match=r"still running: invoices"):
        sensor.execute({"ti": FakeTI()})
    assert time.monotonic() - started < WAIT + SLACK


def test_the_refresh_operator_wait_ends_on_time_under_a_long_retry_after(patient):
    company_id = patient.control.linked_company_ids()[0]
    patient.control.add_fault("rate_limit", path="dataStatus$", times=None, retry_after=60)
    op = CodatQueueDataTypesOperator(
        task_id="q", company_id=company_id, data_types=["invoices"], wait_for_completion=True, timeout=WAIT,
        poll_interval=0.5,
    )  # fmt: skip
    started = time.monotonic()
    with pytest.raises(CodatSyncTimeoutError, match="Last error from Codat|still running"):
        op.execute({"ti": FakeTI()})
    assert time.monotonic() - started < WAIT + SLACK


async def test_triggers_end_on_time_under_each_fault(patient):
    companies = patient.control.linked_company_ids()[: len(FAULTS)]
    triggers = []
    for company_id, fault in zip(companies, sorted(FAULTS), strict=True):
        ticket = queue(patient, company_id)
        patient.control.add_fault(fault, path=f"{company_id}/dataStatus$", times=None, **FAULTS[fault])
        triggers.append(
            CodatSyncTrigger(
                company_id=company_id,
                datasets=ticket["datasets"],
                deadline=time.time() + WAIT,
                started_at=time.time() - 10,  # poll at once
                poll_interval=0.5,
            )
        )

    async def one_event(trigger):
        return [event.payload async for event in trigger.run()]

    started = time.monotonic()
    results = await asyncio.gather(*(one_event(t) for t in triggers))
    assert time.monotonic() - started < WAIT + SLACK
    for (event,) in results:
        assert event["status"] == "timeout", event
        assert event["pending"] == {"invoices": "Unknown"}


def test_soft_fail_skips_on_timeout(patient):
    company_id = patient.control.linked_company_ids()[0]
    ticket = queue(patient, company_id)
    sensor = CodatSyncSensor(task_id="s", ticket=ticket, timeout=1, poke_interval=0.5, soft_fail=True)
    with pytest.raises(AirflowSkipException):
        sensor.execute({"ti": FakeTI()})


# --- malformed answers and bad tickets: errors at once, not waits until the deadline --------------------------

MALFORMED = [
    (["invoices"], "a JSON list"),
    ("Complete", "a JSON str"),
    ({"invoices": "Complete"}, "the entry for invoices is a JSON str"),
    (
        {"invoices": {"dataType": "invoices", "latestSyncId": "x"}},
        "the entry for invoices has no currentStatus",
    ),
    ({"invoices": {"currentStatus": 3}}, "invoices.currentStatus is 3, not a string"),
    ({"invoices": {"currentStatus": "Queued", "lastSuccessfulSync": "soon"}}, "lastSuccessfulSync is 'soon'"),
]


@pytest.mark.parametrize(("body", "named"), MALFORMED)
def test_the_sensor_fails_at_once_on_a_malformed_data_status(
    sim, sim_clock, company_id, context, body, named
):
    ticket = queue(sim, company_id)
    sim.control.add_fault("malformed", path="dataStatus$", body=body, times=None)
    sim.control.reset_request_log()
    with pytest.raises(CodatAPIError, match=named):
        CodatSyncSensor(task_id="s", ticket=ticket).execute(context)
    assert len(requests(sim)) == 1 and sim_clock.offset == 0


@pytest.mark.parametrize(("body", "named"), MALFORMED[:3])
async def test_the_trigger_ends_with_an_error_event_on_a_malformed_data_status(
    sim, sim_clock, company_id, body, named
):
    ticket = queue(sim, company_id)
    sim.control.add_fault("malformed", path="dataStatus$", body=body, times=None)
    trigger = CodatSyncTrigger(
        company_id=company_id, datasets=ticket["datasets"], deadline=sim_clock.now() + 600
    )
    (event,) = [e.payload async for e in trigger.run()]
    assert event["status"] == "error" and named in event["message"]
    assert len(requests(sim, "GET", "dataStatus")) == 1


def test_the_refresh_operator_fails_at_once_on_a_malformed_history(sim, sim_clock, company_id, context):
    sim.control.add_fault("malformed", path="/data/history/", body={"id": "x"}, times=None)
    # dataStatus keeps naming the previous sync: only the history can decide, and it is malformed.
    sim.control.add_fault("malformed", path="dataStatus$", body={"invoices": {"currentStatus": "Complete"}})
    op = CodatQueueDataTypesOperator(
        task_id="q", company_id=company_id, data_types=["invoices"], wait_for_completion=True
    )
    with pytest.raises(CodatAPIError, match=r"data/history/.*status is None, not a string"):
        op.execute(context)


BAD_TICKETS = [
    ({"company_id": "not-a-uuid", "datasets": {}}, "company_id must be a UUID"),
    ({"company_id": "COMPANY", "datasets": {"nonsense": "DATASET"}}, "Unknown Codat data type 'nonsense'"),
    ({"company_id": "COMPANY", "datasets": {"invoices": "../../companies"}}, "dataset id of invoices"),
]


def fill(ticket: dict, company_id: str, dataset_id: str) -> dict:
    text = repr(ticket).replace("COMPANY", company_id).replace("DATASET", dataset_id)
    return eval(text)


@pytest.mark.parametrize(("ticket", "named"), BAD_TICKETS)
async def test_a_bad_ticket_is_refused_before_any_request(sim, sim_clock, company_id, context, ticket, named):
    good = queue(sim, company_id)
    ticket = fill(ticket, company_id, good["datasets"]["invoices"])
    sim.control.reset_request_log()
    with pytest.raises(CodatValidationError, match=named):
        CodatSyncSensor(task_id="s", ticket=ticket).execute(context)
    with pytest.raises(CodatValidationError, match=named):
        CodatSyncSensor(task_id="s", ticket=str(ticket)).execute(context)  # a template rendered as text
    trigger = CodatSyncTrigger(
        company_id=ticket["company_id"], datasets=ticket["datasets"], deadline=sim_clock.now() + 60
    )
    (event,) = [e.payload async for e in trigger.run()]
    assert event["status"] == "error" and event["error_type"] == "CodatValidationError"
    assert named in event["message"]
    op = CodatQueueDataTypesOperator(task_id="q", company_id=company_id, data_types=["invoices"])
    with pytest.raises(CodatValidationError, match=named):
        op.execute_complete(context, {"status": "success", "outcomes": {"invoices": {}}}, ticket=ticket)
    assert requests(sim) == []
