"""Against the simulator over real HTTP: a gateway that echoes the Authorization header (JSON or HTML, in every
spelling) never gets the key into an exception, a log line, a trigger event, a sensor's or operator's return value.

The same goes for a failed sync whose ``errorMessage`` repeats the header: it reaches outcomes, XCom, trigger events
and the sync-failed message only scrubbed.
"""

from __future__ import annotations

import json
import logging
import time

import pytest

from airflow_provider_codat.hooks.codat import CodatAPIError, CodatHook
from airflow_provider_codat.operators.refresh import CodatQueueDataTypesOperator
from airflow_provider_codat.sensors.sync import CodatSyncSensor
from airflow_provider_codat.simulator.echo import ECHOES, echoed
from airflow_provider_codat.triggers.sync import CodatSyncTrigger
from tests.key_leaks import assert_no_leak, leaks

pytestmark = pytest.mark.codat_simulator(sync_seconds=0, records=3)
ECHO_CASES = [(echo, fmt) for echo in ECHOES for fmt in ("json", "html")]


@pytest.fixture(autouse=True)
def no_retries(sim, monkeypatch):
    """Hooks built inside the trigger and the tasks do not retry (their waits would be real)."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_CODAT_DEFAULT",
        json.dumps(
            {"conn_type": "codat", "host": sim.base_url, "password": sim.api_key, "extra": {"max_retries": 0}}
        ),
    )


@pytest.fixture
def hook(sim):
    h = CodatHook(max_retries=2)
    h.sleep = lambda seconds: None
    yield h
    h.close()


@pytest.fixture
def company(sim) -> str:
    return sim.control.linked_company_ids()[0]


def echo_text(sim, echo: str) -> str:
    """A sync error message that repeats the header, as a misbehaving source platform's proxy might."""
    text = f"Upstream rejected the call. Request headers: Authorization: {echoed(sim.auth_header['Authorization'], echo)}"
    assert leaks(text, sim.api_key)
    return text


def _calls(hook: CodatHook, sim, company: str):
    connection = sim.control.connection_id(company)
    return {
        "get_company": (r"^/companies/[^/]+$", lambda: hook.get_company(company)),
        "get_data_status": ("/dataStatus$", lambda: hook.get_data_status(company)),
        "list_companies": ("^/companies$", lambda: list(hook.list_companies())),
        "iter_pages": ("/data/invoices$", lambda: list(hook.iter_pages(company, "invoices"))),
        "iter_pull_operations": ("/data/history$", lambda: list(hook.iter_pull_operations(company))),
        "queue_data_type": ("/data/queue/", lambda: hook.queue_data_type(company, "invoices")),
        "refresh_all_data": ("/data/all$", lambda: hook.refresh_all_data(company)),
        "get_report": ("/balanceSheet$", lambda: hook.get_report(company, "balanceSheet")),
        "list_connections": ("/connections$", lambda: list(hook.list_connections(company))),
        "connection_scoped": (
            "/bankAccounts$",
            lambda: list(hook.iter_pages(company, "bankAccounts", connection_id=connection)),
        ),
    }


@pytest.mark.parametrize("echo,body_format", ECHO_CASES)
@pytest.mark.parametrize("status", [403, 502])
def test_hook_errors_and_logs_never_carry_the_key(sim, hook, company, caplog, echo, body_format, status):
    caplog.set_level(logging.DEBUG)
    for name, (path, call) in _calls(hook, sim, company).items():
        sim.control.add_fault(
            "echo_auth", path=path, status=status, echo=echo, body_format=body_format, times=None
        )
        with pytest.raises(CodatAPIError) as info:
            call()
        sim.control.clear_faults()
        error = info.value
        assert error.status_code == status, name
        assert_no_leak(sim.api_key, error, caplog.text)
        if body_format == "json":
            assert "Request blocked by the gateway" in error.message  # the rest of the text is kept
    if status == 502:
        assert "retry 2/2" in caplog.text  # the retries were logged, and checked above


async def test_async_hook_errors_never_carry_the_key(sim, company, caplog):
    caplog.set_level(logging.DEBUG)
    hook = CodatHook(max_retries=0)
    try:
        for echo, body_format in ECHO_CASES:
            sim.control.add_fault("echo_auth", path="/dataStatus$", echo=echo, body_format=body_format)
            with pytest.raises(CodatAPIError) as info:
                await hook.aget_data_status(company)
            assert_no_leak(sim.api_key, info.value)
    finally:
        await hook.aclose()
    assert_no_leak(sim.api_key, caplog.text)


@pytest.mark.parametrize("echo,body_format", ECHO_CASES)
def test_test_connection_reason_never_carries_the_key(sim, hook, echo, body_format):
    sim.control.add_fault("echo_auth", path="^/companies$", status=401, echo=echo, body_format=body_format)
    ok, reason = hook.test_connection()
    assert not ok and "401" in reason
    assert_no_leak(sim.api_key, reason)


@pytest.mark.parametrize("echo", ["header", "folded", "key", "urlencoded"])
def test_failed_sync_message_is_scrubbed_everywhere_it_goes(sim, hook, company, caplog, echo):
    caplog.set_level(logging.DEBUG)
    sim.control.fail_next_sync(company, "invoices", "FetchError", error_message=echo_text(sim, echo))
    dataset = hook.queue_data_type(company, "invoices")["id"]
    ticket = {
        "company_id": company,
        "requested_at": "2026-01-01T00:00:00Z",
        "datasets": {"invoices": dataset},
    }

    operation = hook.get_pull_operation(company, dataset)
    assert operation["status"] == "FetchError" and "Upstream rejected the call" in operation["errorMessage"]
    history = list(hook.iter_pull_operations(company))

    # The sensor's return value (its XCom) with fail_on_error=False, and its failure otherwise.
    sensor = CodatSyncSensor(task_id="wait", ticket=ticket, fail_on_error=False, mode="poke")
    returned = sensor.poke({})
    assert returned.is_done and returned.xcom_value["invoices"]["status"] == "FetchError"
    with pytest.raises(Exception, match="FetchError") as failed:
        CodatSyncSensor(task_id="wait2", ticket=ticket, mode="poke").poke({})
    assert_no_leak(sim.api_key, operation, history, returned.xcom_value, failed.value, caplog.text)


def test_refresh_operator_wait_failure_is_scrubbed(sim, company, caplog):
    caplog.set_level(logging.DEBUG)
    sim.control.fail_next_sync(company, "payments", "FetchError", error_message=echo_text(sim, "lower"))
    operator = CodatQueueDataTypesOperator(
        task_id="refresh",
        company_id=company,
        data_types=["payments"],
        wait_for_completion=True,
        poll_interval=0.01,
    )
    with pytest.raises(Exception, match="FetchError") as failed:
        operator.execute({})
    assert_no_leak(sim.api_key, failed.value, caplog.text)


def test_refresh_operator_echoed_queue_error_is_scrubbed(sim, company, caplog):
    caplog.set_level(logging.DEBUG)
    sim.control.add_fault("echo_auth", path="/data/queue/", echo="unpadded", body_format="html")
    operator = CodatQueueDataTypesOperator(task_id="refresh", company_id=company, data_types=["bills"])
    with pytest.raises(CodatAPIError) as failed:
        operator.execute({})
    assert_no_leak(sim.api_key, failed.value, caplog.text)


async def _events(trigger: CodatSyncTrigger) -> list[dict]:
    return [event.payload async for event in trigger.run()]


async def test_trigger_failed_event_is_scrubbed(sim, company, caplog):
    caplog.set_level(logging.DEBUG)
    sim.control.fail_next_sync(company, "invoices", "FetchError", error_message=echo_text(sim, "entities"))
    hook = CodatHook()
    dataset = hook.queue_data_type(company, "invoices")["id"]
    hook.close()
    trigger = CodatSyncTrigger(
        company_id=company, datasets={"invoices": dataset}, deadline=time.time() + 60, poll_interval=0.1
    )
    (event,) = await _events(trigger)
    assert event["status"] == "failed" and "Upstream rejected the call" in event["message"]
    assert_no_leak(sim.api_key, event, caplog.text)


@pytest.mark.parametrize("status,expected", [(404, "error"), (503, "timeout")])
async def test_trigger_error_and_timeout_events_are_scrubbed(sim, company, caplog, status, expected):
    """A 404 stops the wait at once; a 503 is waited out until the deadline, whose message quotes the last error."""
    caplog.set_level(logging.DEBUG)
    sim.control.add_fault("echo_auth", path="/dataStatus$", status=status, echo="folded", times=None)
    trigger = CodatSyncTrigger(
        company_id=company,
        datasets={"invoices": "9a4b7c2e-1f3d-4e5a-8b6c-7d8e9f0a1b2c"},
        deadline=time.time() + 0.5,
        poll_interval=0.1,
    )
    (event,) = await _events(trigger)
    assert event["status"] == expected and "Request blocked by the gateway" in event["message"]
    assert_no_leak(sim.api_key, event, caplog.text)
