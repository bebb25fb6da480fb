"""Overlong input (a 10,000-character data type, id, query, destination ...) gets a short message that does not
repeat it: every validator, the hook's argument checks and every operator's, sensor's and trigger's checks."""

from __future__ import annotations

import asyncio
import re
import time
from types import SimpleNamespace

import pytest

from airflow_provider_codat import query, validation
from airflow_provider_codat.dags_builder import SyncSpec
from airflow_provider_codat.datatypes import CATALOGUE, get_data_type
from airflow_provider_codat.hooks._transport import settings_from
from airflow_provider_codat.hooks.codat import CodatHook
from airflow_provider_codat.operators.companies import CodatListCompaniesOperator
from airflow_provider_codat.operators.extract import CodatExtractOperator
from airflow_provider_codat.operators.refresh import CodatQueueDataTypesOperator, CodatRefreshAllDataOperator
from airflow_provider_codat.safe_repr import shorten
from airflow_provider_codat.sensors.freshness import CodatFreshnessSensor
from airflow_provider_codat.sensors.sync import CodatSyncSensor
from airflow_provider_codat.sync import ticket as wait_task
from airflow_provider_codat.sync.ticket import WaitSpec
from airflow_provider_codat.triggers.sync import CodatSyncTrigger

LONG = "Q" * 10_000
COMPANY = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
UUID_LIKE = COMPANY + "0" * 10_000
# The unknown-data-type message lists the catalogue (a fixed length): allowed on top of the bound.
CATALOGUE_LISTING = len(", ".join(sorted(CATALOGUE)))
BOUND = 500
CONTEXT = {"run_id": "manual__2026-01-01"}


def assert_short(message: str) -> None:
    longest_run = max((len(m) for m in re.findall(r"Q+|0{20,}", message)), default=0)
    assert longest_run <= 100, f"the message repeats the input ({longest_run} characters)"
    limit = BOUND + (CATALOGUE_LISTING if "Use one of:" in message else 0)
    assert len(message) < limit, f"{len(message)} characters: {message[:200]}"


def check(call) -> str:
    with pytest.raises(Exception) as info:
        call()
    assert_short(str(info.value))
    return str(info.value)


VALIDATORS = {
    "uuid": lambda: validation.require_uuid(LONG, "company_id"),
    "uuid_prefix": lambda: validation.require_uuid(UUID_LIKE, "company_id"),
    "segment": lambda: validation.require_segment(LONG, "account_id"),
    "data_type": lambda: validation.require_data_type(LONG),
    "catalogue": lambda: get_data_type(LONG),
    "query": lambda: validation.require_query(LONG),
    "query_control": lambda: validation.require_query("a" * 2000 + "\x01"),
    "order_by": lambda: validation.require_order_by(LONG),
    "order_by_bad": lambda: validation.require_order_by("-" + LONG + "!"),
    "page_size": lambda: validation.require_page_size(LONG),
    "int": lambda: validation.require_int(LONG, "periodLength"),
    "int_digits": lambda: validation.require_int("9" * 10_000 + "x", "periodLength"),
    "query_value": lambda: query.format_value(LONG + "&&"),
    "query_value_control": lambda: query.format_value(LONG + "\x00"),
    "query_field": lambda: query.condition(LONG + "!", "=", 1),
    "query_op": lambda: query.condition("name", LONG, 1),
    "query_contains": lambda: query.condition("amount", "~", [LONG]),
    "query_ordered": lambda: query.condition("amount", ">", LONG),
    "query_part": lambda: query.all_of("a=1", [LONG]),
    "seconds": lambda: wait_task.to_seconds(LONG, "timeout"),
    "data_types_list": lambda: wait_task.normalize_data_types([LONG]),
    "data_types_text": lambda: wait_task.normalize_data_types(LONG),
    "data_types_literal": lambda: wait_task.normalize_data_types("[" + LONG),
    "data_types_type": lambda: wait_task.normalize_data_types(10**30),
    "ticket": lambda: wait_task.parse_ticket(LONG),
    "ticket_literal": lambda: wait_task.parse_ticket("{'x': '" + LONG + "'}"),
    "iso": lambda: wait_task.iso_utc(LONG),
    "wait_spec": lambda: WaitSpec(company_id=COMPANY, data_types=["invoices"], synced_after=LONG),
    "connection_extra": lambda: settings_from(
        SimpleNamespace(password="key", host=None, port=None), {"timeout": LONG}, "codat_default", {}
    ),
    "dag_spec": lambda: SyncSpec(dag_id="d", schedule=None, data_types=["invoices"], refresh=LONG),
}


@pytest.mark.parametrize("name", sorted(VALIDATORS))
def test_validators(name):
    check(VALIDATORS[name])


HOOK_CALLS = {
    "portal_url": lambda h: h.portal_url(LONG),
    "get_company": lambda h: h.get_company(UUID_LIKE),
    "list_companies": lambda h: h.list_companies(query=LONG),
    "list_companies_order": lambda h: h.list_companies(order_by=LONG),
    "iter_pages_type": lambda h: h.iter_pages(COMPANY, LONG),
    "iter_pages_connection": lambda h: h.iter_pages(COMPANY, "bankAccounts", connection_id=LONG),
    "iter_pages_account": lambda h: h.iter_pages(
        COMPANY, "bankTransactions", connection_id=COMPANY, account_id=LONG
    ),
    "get_report_params": lambda h: h.get_report(COMPANY, "balanceSheet", **{LONG: 1}),
    "get_report_int": lambda h: h.get_report(COMPANY, "balanceSheet", periodLength=LONG),
    "queue": lambda h: h.queue_data_type(COMPANY, LONG),
    "queue_connection": lambda h: h.queue_data_type(COMPANY, "invoices", connection_id=LONG),
    "pull_operation": lambda h: h.get_pull_operation(COMPANY, LONG),
}


@pytest.mark.parametrize("name", sorted(HOOK_CALLS))
def test_hook_arguments(name):
    """Checked before the connection is read: no connection is configured here."""
    check(lambda: HOOK_CALLS[name](CodatHook(codat_conn_id="no_such_connection")))


def _extract(**overrides):
    kwargs = {"company_id": COMPANY, "data_type": "invoices", "destination": "file:///tmp/codat", **overrides}
    return CodatExtractOperator(task_id="extract", **kwargs)


TASKS = {
    "extract_company": lambda: _extract(company_id=LONG),
    "extract_type": lambda: _extract(data_type=LONG),
    "extract_destination": lambda: _extract(destination=LONG),
    "extract_connection": lambda: _extract(connection_id=LONG),
    "extract_page_size": lambda: _extract(page_size=LONG),
    "extract_compresslevel": lambda: _extract(compresslevel=10**30),
    "extract_passes": lambda: _extract(max_passes=LONG),
    "extract_bool": lambda: _extract(include_deleted=LONG).execute(CONTEXT),
    "queue_mode": lambda: CodatQueueDataTypesOperator(
        task_id="q", company_id=COMPANY, data_types=["invoices"], if_in_progress=LONG
    ),
    "queue_company": lambda: CodatQueueDataTypesOperator(
        task_id="q", company_id=LONG, data_types=["x"]
    ).execute({}),
    "queue_types": lambda: CodatQueueDataTypesOperator(
        task_id="q", company_id=COMPANY, data_types=LONG
    ).execute({}),
    "queue_connection": lambda: CodatQueueDataTypesOperator(
        task_id="q", company_id=COMPANY, data_types=["invoices"], connection_id=LONG
    ).execute({}),
    "queue_timeout": lambda: CodatQueueDataTypesOperator(
        task_id="q", company_id=COMPANY, data_types=["invoices"], timeout=LONG
    ),
    "refresh_all_company": lambda: CodatRefreshAllDataOperator(task_id="r", company_id=LONG).execute({}),
    "refresh_all_types": lambda: CodatRefreshAllDataOperator(
        task_id="r", company_id=COMPANY, data_types=[LONG]
    ).execute({}),
    "sensor_ticket": lambda: CodatSyncSensor(task_id="s", ticket=LONG).poke({}),
    "sensor_ticket_types": lambda: CodatSyncSensor(
        task_id="s", ticket={"company_id": COMPANY, "datasets": {LONG: COMPANY}}, data_types=["invoices"]
    ).poke({}),
    "sensor_types": lambda: CodatSyncSensor(
        task_id="s", company_id=COMPANY, data_types=[LONG], synced_after="2026-01-01T00:00:00Z"
    ).poke({}),
    "sensor_since": lambda: CodatSyncSensor(
        task_id="s", company_id=COMPANY, data_types=["invoices"], synced_after=LONG
    ).poke({}),
    "sensor_interval": lambda: CodatSyncSensor(task_id="s", ticket={}, max_poke_interval=LONG),
    "freshness_age": lambda: CodatFreshnessSensor(
        task_id="f", company_id=COMPANY, data_types=["invoices"], max_age=LONG
    ),
    "freshness_types": lambda: CodatFreshnessSensor(task_id="f", company_id=COMPANY, data_types=LONG).poke(
        {}
    ),
    "list_companies_query": lambda: CodatListCompaniesOperator(task_id="c", query=LONG).execute({}),
    "list_companies_status": lambda: CodatListCompaniesOperator(task_id="c", connection_status=LONG).execute(
        {}
    ),
}


@pytest.mark.parametrize("name", sorted(TASKS))
def test_operators_sensors_and_their_arguments(name, monkeypatch):
    # Checked before any request: a connection that points nowhere proves it.
    monkeypatch.setenv(
        "AIRFLOW_CONN_CODAT_DEFAULT", '{"conn_type": "codat", "host": "http://127.0.0.1:9", "password": "k"}'
    )
    check(TASKS[name])


def test_trigger_error_event_is_short(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_CODAT_DEFAULT", '{"conn_type": "codat", "host": "http://127.0.0.1:9", "password": "k"}'
    )
    trigger = CodatSyncTrigger(company_id=LONG, datasets={"invoices": COMPANY}, deadline=time.time() + 1)

    async def first_event():
        return [event.payload async for event in trigger.run()][0]

    event = asyncio.run(first_event())
    assert event["status"] == "error"
    assert_short(event["message"])


def test_shorten():
    assert shorten("abc") == "'abc'"
    text = shorten(LONG)
    assert len(text) < 100 and "10,000 characters" in text
    assert len(shorten([LONG] * 10_000)) <= 80
    assert len(shorten({LONG: [LONG]})) <= 80
    assert shorten(10**5000) == "<int>"  # too many digits for repr: a short stand-in, no error
