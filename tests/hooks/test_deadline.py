"""The connection's ``timeout`` bounds a whole request, and a caller's ``deadline`` bounds a call with its retries,
against the simulator's real HTTP (real time: each test takes a second or two)."""

from __future__ import annotations

import json
import time

import pytest

from airflow_provider_codat.errors import CodatAPIError, is_transient
from airflow_provider_codat.hooks import _clients
from airflow_provider_codat.hooks.codat import CodatHook


@pytest.fixture
def company_id(codat_simulator) -> str:
    return codat_simulator.control.linked_company_ids()[0]


def use(monkeypatch, sim, **extra) -> None:
    connection = {"conn_type": "codat", "host": sim.base_url, "password": sim.api_key, "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_CODAT_DEFAULT", json.dumps(connection))


def test_a_trickling_body_times_out_as_a_whole_request(codat_simulator, monkeypatch, company_id):
    use(monkeypatch, codat_simulator, timeout=1, max_retries=0)
    codat_simulator.control.add_fault("trickle", path="dataStatus$", delay=0.2)
    started = time.monotonic()
    with CodatHook() as hook, pytest.raises(CodatAPIError, match="ReadTimeout") as raised:
        hook.get_data_status(company_id)
    assert time.monotonic() - started < 2.0  # httpx's per-read timeout alone would wait for every byte
    assert is_transient(raised.value)


async def test_a_trickling_body_times_out_as_a_whole_request_async(codat_simulator, monkeypatch, company_id):
    use(monkeypatch, codat_simulator, timeout=1, max_retries=0)
    codat_simulator.control.add_fault("trickle", path="dataStatus$", delay=0.2)
    hook = CodatHook()
    started = time.monotonic()
    try:
        with pytest.raises(CodatAPIError, match="ReadTimeout"):
            await hook.aget_data_status(company_id)
    finally:
        await hook.aclose()
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_a_deadline_cuts_the_request_and_the_retry_waits(
    codat_simulator, monkeypatch, company_id, asynchronous
):
    use(monkeypatch, codat_simulator, timeout=30, max_retries=5)
    control = codat_simulator.control
    control.add_fault("trickle", path="dataStatus$", delay=0.2, times=1)
    control.add_fault("rate_limit", path="dataStatus$", retry_after=60, times=None)
    hook = CodatHook()
    started = time.monotonic()
    try:
        with pytest.raises(CodatAPIError) as raised:
            if asynchronous:
                await hook.aget_data_status(company_id, deadline=time.time() + 1.5)
            else:
                hook.get_data_status(company_id, deadline=time.time() + 1.5)
    finally:
        await hook.aclose()
    # The first attempt trickles until the deadline; the retry gets a 429 whose Retry-After (60 s, well inside
    # max_retry_time) would outlive the deadline, so the hook gives up instead of sleeping.
    assert time.monotonic() - started < 2.5
    assert raised.value.status_code in (None, 429)
    statuses = [r["status"] for r in control.request_log()]
    assert len(statuses) <= 2


def test_a_non_json_answer_is_an_api_error_that_is_not_transient(codat_simulator, monkeypatch, company_id):
    use(monkeypatch, codat_simulator, max_retries=0)
    codat_simulator.control.add_fault("malformed", path="dataStatus$", body=["not", "an", "object"])
    with CodatHook() as hook, pytest.raises(CodatAPIError, match="JSON list") as raised:
        hook.get_data_status(company_id)
    assert not is_transient(raised.value)


async def test_hooks_in_one_loop_share_one_client_and_its_connection(
    codat_simulator, monkeypatch, company_id
):
    use(monkeypatch, codat_simulator)
    built = _clients.SHARED.built
    hooks = [CodatHook() for _ in range(5)]
    for hook in hooks:
        await hook.aget_data_status(company_id)
    for hook in hooks:
        await hook.aget_data_status(company_id)
    clients = {id(hook._async_client) for hook in hooks}
    assert len(clients) == 1 and _clients.SHARED.built == built + 1
    client = hooks[0]._async_client
    assert len(client._transport._pool.connections) == 1  # ten requests, one connection
    for hook in hooks[:-1]:
        await hook.aclose()
    assert not client.is_closed  # still lent to the last hook
    await hooks[-1].aclose()
    assert client.is_closed and _clients.SHARED.open_clients() == 0


def test_one_tls_context_per_process(codat_simulator, monkeypatch):
    use(monkeypatch, codat_simulator)
    first, second = CodatHook(), CodatHook()
    try:
        contexts = {id(h.client._transport._pool._ssl_context) for h in (first, second)}
    finally:
        first.close()
        second.close()
    assert contexts == {id(_clients.tls_context())}
