"""The async twins against the simulator over real HTTP (pytest-asyncio)."""

from __future__ import annotations

import pytest

from airflow_provider_codat.hooks.codat import CodatAPIError, CodatHook

UNKNOWN_COMPANY = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
async def ahook(codat_simulator, monkeypatch):
    for key, value in codat_simulator.conn_env.items():
        monkeypatch.setenv(key, value)
    hook = CodatHook()
    hook.sleeps = []

    async def record(seconds):
        hook.sleeps.append(seconds)

    hook.async_sleep = record
    yield hook
    await hook.aclose()


async def test_async_status_and_pull_operation_follow_a_sync(codat_simulator, ahook):
    control = codat_simulator.control
    company = control.companies()[0]["id"]
    before = (await ahook.aget_data_status(company))["invoices"]
    pull = ahook.queue_data_type(company, "invoices")  # the sync side queues; the trigger side watches
    during = (await ahook.aget_data_status(company))["invoices"]
    assert during["latestSyncId"] == pull["id"] != before["latestSyncId"]
    assert (await ahook.aget_pull_operation(company, pull["id"]))["isCompleted"] is False
    control.complete_running_syncs()
    after = (await ahook.aget_data_status(company))["invoices"]
    assert after["latestSuccessfulSyncId"] == pull["id"] and after["currentStatus"] == "Complete"
    assert (await ahook.aget_pull_operation(company, pull["id"]))["status"] == "Complete"


async def test_async_company(codat_simulator, ahook):
    company = codat_simulator.control.companies()[0]
    assert (await ahook.aget_company(company["id"]))["name"] == company["name"]
    with pytest.raises(CodatAPIError) as info:
        await ahook.aget_company(UNKNOWN_COMPANY)
    assert info.value.status_code == 404


async def test_async_survives_faults(codat_simulator, ahook):
    control = codat_simulator.control
    company = control.companies()[0]["id"]
    expected = ahook.get_data_status(company)
    control.add_fault("rate_limit", path="dataStatus", retry_after=2)
    control.add_fault("server_error", path="dataStatus", status=504)
    control.add_fault("drop", path="dataStatus")
    assert await ahook.aget_data_status(company) == expected
    assert len(ahook.sleeps) == 3 and 2.0 in ahook.sleeps  # the drop is served first, then the 429


async def test_async_gives_up_after_max_retries(codat_simulator, ahook):
    company = codat_simulator.control.companies()[0]["id"]
    codat_simulator.control.add_fault("server_error", path="data/history", status=503, times=None)
    with pytest.raises(CodatAPIError) as info:
        await ahook.aget_pull_operation(company, "9a4b7c2e-1f3d-4e5a-8b6c-7d8e9f0a1b2c")
    assert info.value.status_code == 503 and "non-JSON body (text/html)" in str(info.value)
    assert len(ahook.sleeps) == 5  # the default max_retries
