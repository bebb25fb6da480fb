"""Connection settings, clients, and the simple reads of CodatHook (respx, no network)."""

from __future__ import annotations

import datetime as dt
import json

import httpx
import pendulum
import pytest
import respx
from airflow.exceptions import AirflowException

from airflow_provider_codat import __version__
from airflow_provider_codat.hooks.codat import CodatAPIError, CodatHook
from tests.hooks.conftest import BASE, COMPANY, CONNECTION, DATASET


def test_hook_identity():
    assert CodatHook.conn_name_attr == "codat_conn_id"
    assert CodatHook.default_conn_name == "codat_default"
    assert CodatHook.conn_type == "codat"
    assert CodatHook.hook_name == "Codat"


def test_init_does_no_io(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_CODAT_DEFAULT", raising=False)
    hook = CodatHook("missing")  # the connection does not exist: only a request would notice
    assert hook.codat_conn_id == "missing"


@pytest.mark.parametrize(
    ("conn", "base_url"),
    [
        ({"password": "k" * 10}, "https://api.codat.io"),
        ({"password": "k" * 10, "host": "sandbox.example.com"}, "https://sandbox.example.com"),
        ({"password": "k" * 10, "host": "localhost", "port": 8765}, "https://localhost:8765"),
        ({"password": "k" * 10, "host": "http://127.0.0.1:8765/"}, "http://127.0.0.1:8765"),
    ],
)
def test_base_url_from_connection(monkeypatch, conn, base_url):
    monkeypatch.setenv("AIRFLOW_CONN_CODAT_DEFAULT", json.dumps({"conn_type": "codat", **conn}))
    hook = CodatHook()
    assert str(hook.client.base_url).rstrip("/") == base_url


def test_extras_and_user_agent(monkeypatch):
    extra = {"timeout": 12, "max_retries": 2, "portal_url": "https://portal.test/"}
    monkeypatch.setenv(
        "AIRFLOW_CONN_CODAT_DEFAULT",
        json.dumps({"conn_type": "codat", "host": BASE, "password": "key-12345", "extra": extra}),
    )
    hook = CodatHook()
    assert hook.client.timeout.read == 12
    ua = hook.client.headers["User-Agent"]
    assert f"airflow-provider-codat/{__version__}" in ua and "apache-airflow/3." in ua
    assert hook.portal_url(COMPANY) == f"https://portal.test/companies/{COMPANY}/summary"
    with respx.mock(base_url=BASE) as api:
        route = api.get(f"/companies/{COMPANY}").respond(503)
        hook.sleep = lambda s: None
        with pytest.raises(CodatAPIError):
            hook.get_company(COMPANY)
        assert route.call_count == 3


def test_bad_extra_is_reported(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_CODAT_DEFAULT",
        json.dumps({"conn_type": "codat", "password": "key-12345", "extra": {"max_retries": "lots"}}),
    )
    with pytest.raises(AirflowException, match="max_retries"):
        CodatHook().get_company(COMPANY)


def test_one_client_reused_across_calls(hook, api):
    api.get(f"/companies/{COMPANY}").respond(200, json={"id": COMPANY})
    client = hook.client
    hook.get_company(COMPANY)
    hook.get_company(COMPANY)
    assert hook.client is client and hook.get_conn() is client
    hook.close()
    assert hook.client is not client


def test_get_data_status_and_pull_operation(hook, api):
    status = {"invoices": {"dataType": "invoices", "currentStatus": "Complete", "latestSyncId": DATASET}}
    api.get(f"/companies/{COMPANY}/dataStatus").respond(200, json=status)
    api.get(f"/companies/{COMPANY}/data/history/{DATASET}").respond(200, json={"id": DATASET})
    assert hook.get_data_status(COMPANY) == status
    assert hook.get_pull_operation(COMPANY, DATASET) == {"id": DATASET}


def test_refresh_all_posts_and_returns_none(hook, api):
    route = api.post(f"/companies/{COMPANY}/data/all").respond(204)
    assert hook.refresh_all_data(COMPANY) is None
    assert route.call_count == 1


def test_get_report_defaults_and_params(hook, api):
    route = api.get(f"/companies/{COMPANY}/data/financials/balanceSheet").respond(200, json={"reports": []})
    assert hook.get_report(COMPANY, "balanceSheet") == {"reports": []}
    assert dict(route.calls.last.request.url.params) == {"periodLength": "1", "periodsToCompare": "24"}
    import datetime as dt

    hook.get_report(
        COMPANY, "balanceSheet", period_length=3, periodsToCompare=4, start_month=dt.date(2024, 1, 1)
    )
    assert dict(route.calls.last.request.url.params) == {
        "periodLength": "3",
        "periodsToCompare": "4",
        "startMonth": "2024-01-01",
    }


@pytest.mark.parametrize(
    "start_month",
    [
        pendulum.datetime(2027, 1, 1, tz="Europe/Paris"),  # 2026-12-31T23:00Z: still January for Paris
        pendulum.datetime(2027, 1, 1, 1, 30, tz="America/New_York"),
        dt.datetime(2027, 1, 1),  # a month needs no zone
        dt.date(2027, 1, 1),
    ],
)
def test_get_report_start_month_is_the_calendar_month_given(hook, api, start_month):
    route = api.get(f"/companies/{COMPANY}/data/financials/profitAndLoss").respond(200, json={"reports": []})
    hook.get_report(COMPANY, "profitAndLoss", start_month=start_month)
    assert route.calls.last.request.url.params["startMonth"] == "2027-01-01"


def test_get_report_company_info_and_commerce_info(hook, api):
    info = api.get(f"/companies/{COMPANY}/data/info").respond(200, json={"companyName": "Acme"})
    commerce = api.get(f"/companies/{COMPANY}/connections/{CONNECTION}/data/commerce-info").respond(
        200, json={}
    )
    assert hook.get_report(COMPANY, "company") == {"companyName": "Acme"}
    assert not info.calls.last.request.url.params
    assert hook.get_report(COMPANY, "commerce-companyInfo", connection_id=CONNECTION) == {}
    assert commerce.call_count == 1


def test_sync_settings(hook, api):
    settings = [{"dataType": "invoices", "fetchOnFirstLink": True, "syncSchedule": 24}]
    api.get("/profile/syncSettings").respond(200, json={"clientId": "x", "settings": settings})
    assert hook.get_sync_settings() == settings


def test_success_with_a_non_json_body_is_an_error(hook, api):
    api.get(f"/companies/{COMPANY}/dataStatus").respond(200, text="<html>login</html>")
    with pytest.raises(AirflowException, match="not JSON"):
        hook.get_data_status(COMPANY)


async def test_async_twins(conn, api):
    hook = CodatHook()
    slept = []

    async def asleep(seconds):
        slept.append(seconds)

    hook.async_sleep = asleep
    status = {"invoices": {"dataType": "invoices"}}
    api.get(f"/companies/{COMPANY}/dataStatus").mock(
        side_effect=[httpx.Response(429), httpx.Response(200, json=status)]
    )
    api.get(f"/companies/{COMPANY}/data/history/{DATASET}").respond(200, json={"id": DATASET})
    api.get(f"/companies/{COMPANY}").respond(404, json={"error": "Company not found"})
    assert await hook.aget_data_status(COMPANY) == status
    assert len(slept) == 1
    assert await hook.aget_pull_operation(COMPANY, DATASET) == {"id": DATASET}
    with pytest.raises(CodatAPIError) as info:
        await hook.aget_company(COMPANY)
    assert info.value.status_code == 404 and "not found" in str(info.value).lower()
    client = hook._async_client
    assert client is not None
    await hook.aclose()
    assert client.is_closed


async def test_async_resolves_the_connection_with_the_async_api(conn, api, monkeypatch):
    calls = []

    def no_sync(*a, **k):  # the sync lookup would block the event loop
        raise AssertionError("sync get_connection called from async code")

    monkeypatch.setattr(CodatHook, "get_connection", classmethod(no_sync))
    original = CodatHook.aget_connection.__func__

    async def spy(cls, conn_id):
        calls.append(conn_id)
        return await original(cls, conn_id)

    monkeypatch.setattr(CodatHook, "aget_connection", classmethod(spy))
    api.get(f"/companies/{COMPANY}/dataStatus").respond(200, json={})
    hook = CodatHook()
    await hook.aget_data_status(COMPANY)
    await hook.aget_data_status(COMPANY)
    await hook.aclose()
    assert calls == ["codat_default"]  # resolved once, then cached


async def test_async_calls_share_one_client(conn, api, monkeypatch):
    import asyncio

    created = []

    class Counting(httpx.AsyncClient):
        def __init__(self, **kw):
            created.append(self)
            super().__init__(**kw)

    monkeypatch.setattr(httpx, "AsyncClient", Counting)
    api.get(f"/companies/{COMPANY}/dataStatus").respond(200, json={})
    hook = CodatHook()
    await asyncio.gather(*(hook.aget_data_status(COMPANY) for _ in range(5)))
    await asyncio.gather(*(hook.aget_data_status(COMPANY) for _ in range(3)))
    assert len(created) == 1 and hook._async_client is created[0]
    assert api.calls.call_count == 8
    await hook.aclose()
