"""The API key and its encoded form appear in no log line, message, repr or test_connection reason."""

from __future__ import annotations

import base64
import logging

import httpx
import pytest

from airflow_provider_codat.hooks.codat import CodatAPIError, CodatHook
from tests.hooks.conftest import API_KEY, COMPANY, codat_error
from tests.key_leaks import assert_no_leak

ENCODED = base64.b64encode(API_KEY.encode()).decode()


def _assert_clean(text: str) -> None:
    assert API_KEY not in text
    assert ENCODED not in text


def test_basic_auth_header_encodes_the_bare_key(hook, api):
    route = api.get(f"/companies/{COMPANY}").respond(200, json={"id": COMPANY})
    hook.get_company(COMPANY)
    assert route.calls.last.request.headers["Authorization"] == f"Basic {ENCODED}"


def test_key_and_header_are_masked_when_built(hook, api, monkeypatch):
    masked = []
    monkeypatch.setattr("airflow.sdk.log.mask_secret", lambda value, name=None: masked.append(value))
    api.get(f"/companies/{COMPANY}").respond(200, json={"id": COMPANY})
    hook.get_company(COMPANY)
    assert API_KEY in masked and ENCODED in masked


async def test_async_masking_uses_the_async_api(conn, api, monkeypatch):
    masked = []

    async def amask(value, name=None):
        masked.append(value)

    # The hook's async masking: Airflow's amask_secret (3.3.2+) or the provider's stand-in on older Airflow.
    monkeypatch.setattr("airflow_provider_codat.version_compat.amask_secret", amask)
    api.get(f"/companies/{COMPANY}/dataStatus").respond(200, json={})
    h = CodatHook()
    await h.aget_data_status(COMPANY)
    await h.aclose()
    assert API_KEY in masked and ENCODED in masked


def test_secret_absent_from_logs_errors_and_repr(hook, api, caplog, sleeps):
    caplog.set_level(logging.DEBUG)
    api.get(f"/companies/{COMPANY}/dataStatus").mock(
        side_effect=[
            httpx.Response(503, headers={"X-Rate-Limit-Remaining": "3", "X-Rate-Limit-Limit": "1000"})
        ]
        + [httpx.Response(401, json=codat_error(401, "Unauthorized"))]
    )
    with pytest.raises(CodatAPIError) as info:
        hook.get_data_status(COMPANY)
    assert info.value.status_code == 401
    assert "retry 1/3" in caplog.text  # the logs were captured
    for text in (
        caplog.text,
        str(info.value),
        repr(info.value),
        repr(hook),
        repr(hook.client),
        str(vars(hook)),
    ):
        _assert_clean(text)
    assert repr(hook) == "CodatHook(codat_conn_id='codat_default')"


def test_test_connection_reads_one_company(hook, api):
    route = api.get("/companies").respond(
        200, json={"results": [], "pageNumber": 1, "pageSize": 1, "totalResults": 0}
    )
    ok, message = hook.test_connection()
    assert ok and "https://codat.test" in message
    assert route.call_count == 1
    assert route.calls.last.request.url.params["pageSize"] == "1"


@pytest.mark.parametrize(
    "failure", [httpx.Response(401, json=codat_error(401, "Unauthorized")), httpx.ConnectError("refused")]
)
def test_test_connection_reports_failure_without_the_key(hook, api, sleeps, failure):
    route = api.get("/companies").mock(side_effect=[failure])
    ok, reason = hook.test_connection()
    assert not ok
    assert route.call_count == 1 and sleeps == []  # one request, no retries
    _assert_clean(reason)
    assert "401" in reason or "ConnectError" in reason


def test_test_connection_without_a_key(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_CODAT_DEFAULT", '{"conn_type": "codat", "host": "https://codat.test"}')
    ok, reason = CodatHook().test_connection()
    assert not ok and "no API key" in reason


def test_low_rate_limit_warns_once(hook, api, caplog):
    caplog.set_level(logging.DEBUG, logger="airflow_provider_codat")
    headers = {"X-Rate-Limit-Remaining": "50", "X-Rate-Limit-Limit": "1000", "X-Rate-Limit-Reset": "midnight"}
    api.get(f"/companies/{COMPANY}/dataStatus").respond(200, json={}, headers=headers)
    hook.get_data_status(COMPANY)
    hook.get_data_status(COMPANY)
    warnings = [
        r for r in caplog.records if r.levelno == logging.WARNING and "nearly spent" in r.getMessage()
    ]
    assert len(warnings) == 1
    assert "50 of 1000" in warnings[0].getMessage()
    debug = [r for r in caplog.records if r.levelno == logging.DEBUG and "remaining" in r.getMessage()]
    assert len(debug) == 2


def test_every_spelling_of_the_key_is_masked(hook, api, monkeypatch):
    masked = []
    monkeypatch.setattr("airflow.sdk.log.mask_secret", lambda value, name=None: masked.append(value))
    api.get(f"/companies/{COMPANY}").respond(200, json={"id": COMPANY})
    hook.get_company(COMPANY)
    assert {f"Basic {ENCODED}", f"Basic%20{ENCODED}", ENCODED} <= {m for m in masked if isinstance(m, str)}


def test_headers_and_reason_of_an_error_are_scrubbed(hook, api):
    echo = f"Basic {ENCODED}"
    api.get(f"/companies/{COMPANY}").respond(
        429,
        json={"error": f"limited; you sent {echo}", "correlationId": f"c-{API_KEY}"},
        headers={"Retry-After": f"later {echo}", "Content-Type": f"application/json; note={API_KEY}"},
    )
    with pytest.raises(CodatAPIError) as info:
        hook.get_company(COMPANY)
    error = info.value
    assert error.status_code == 429 and "limited; you sent Basic ***" in error.message
    assert_no_leak(API_KEY, error)
    assert error.correlation_id == "c-***"


def test_error_text_is_bounded(hook, api):
    api.get(f"/companies/{COMPANY}").respond(404, json={"error": "x" * 100_000 + API_KEY})
    with pytest.raises(CodatAPIError) as info:
        hook.get_company(COMPANY)
    assert len(info.value.message) < 1500 and len(info.value.error) <= 500
    assert_no_leak(API_KEY, info.value)


def test_a_key_cut_by_the_snippet_is_scrubbed_first(hook, api):
    """The non-JSON snippet is cut at 160 characters: the scrub comes first, so no half key is left."""
    body = "<html>" + "y" * 140 + ENCODED + "</html>"
    api.get(f"/companies/{COMPANY}").respond(403, text=body, headers={"Content-Type": "text/html"})
    with pytest.raises(CodatAPIError) as info:
        hook.get_company(COMPANY)
    assert ENCODED[:6] not in info.value.message and "***" in info.value.message


def test_rate_limit_warning_scrubs_the_reset_header(hook, api, caplog):
    caplog.set_level(logging.WARNING, logger="airflow_provider_codat")
    headers = {
        "X-Rate-Limit-Remaining": "5",
        "X-Rate-Limit-Limit": "1000",
        "X-Rate-Limit-Reset": f"Basic {ENCODED}",
    }
    api.get(f"/companies/{COMPANY}/dataStatus").respond(200, json={}, headers=headers)
    hook.get_data_status(COMPANY)
    assert "quota is nearly spent" in caplog.text
    assert_no_leak(API_KEY, caplog.text)
