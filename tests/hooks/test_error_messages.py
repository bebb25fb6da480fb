"""Error responses become CodatAPIError with fields and a message a person can act on."""

from __future__ import annotations

import pickle

import httpx
import pytest

from airflow_provider_codat.hooks.codat import CodatAPIError, CodatDatasetInProgressError
from tests.hooks.conftest import COMPANY, CONNECTION, DATASET, codat_error

STATUS_PATH = f"/companies/{COMPANY}/dataStatus"


@pytest.mark.parametrize(
    ("status", "advice"),
    [
        (400, "malformed"),
        (401, "check the API key (password) in connection `codat_default`"),
        (402, "plan or quota"),
        (403, "not allowed to access this resource"),
        (404, "data type is not supported"),
        (409, "queue a refresh first"),
    ],
)
def test_each_error_status_has_its_message_and_is_not_retried(hook, api, sleeps, status, advice):
    route = api.get(STATUS_PATH).respond(status, json=codat_error(status, f"boom {status}", "corr-42"))
    with pytest.raises(CodatAPIError) as info:
        hook.get_data_status(COMPANY)
    exc = info.value
    assert type(exc) is CodatAPIError
    assert (exc.status_code, exc.error, exc.correlation_id) == (status, f"boom {status}", "corr-42")
    assert (exc.method, exc.path) == ("GET", STATUS_PATH)
    assert advice in str(exc)
    assert f"boom {status}" in str(exc) and "corr-42" in str(exc) and STATUS_PATH in str(exc)
    assert route.call_count == 1
    assert sleeps == []


def test_http_status_is_trusted_over_the_body(hook, api):
    api.get(STATUS_PATH).respond(402, json=codat_error(429, "Payment Required"))
    with pytest.raises(CodatAPIError) as info:
        hook.get_data_status(COMPANY)
    assert info.value.status_code == 402
    assert "plan or quota" in str(info.value)


@pytest.mark.parametrize("status", [502, 503, 504])
def test_html_error_body_still_gives_a_clear_error(hook, api, status):
    html = "<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>"
    api.get(STATUS_PATH).respond(status, text=html, headers={"content-type": "text/html"})
    with pytest.raises(CodatAPIError) as info:
        hook.get_data_status(COMPANY)
    exc = info.value
    assert exc.status_code == status
    assert exc.correlation_id is None
    message = str(exc)
    assert "non-JSON body (text/html)" in message
    assert "Bad Gateway" in message and "<html>" not in message
    assert "after 3 retries" in message


def test_empty_error_body(hook, api):
    api.get(STATUS_PATH).respond(404)
    with pytest.raises(CodatAPIError) as info:
        hook.get_data_status(COMPANY)
    assert info.value.error is None
    assert "empty or non-JSON body" in str(info.value)


@pytest.mark.parametrize("status", [400, 409, 422])
def test_in_progress_error_is_recognised_under_any_4xx(hook, api, status):
    text = (
        f"DatasetAlreadyInProgressException: Cannot queue bankAccounts sync for {COMPANY} as previous "
        f"sync {DATASET} is still in progress"
    )
    api.post(f"/companies/{COMPANY}/data/queue/bankAccounts").respond(status, json=codat_error(status, text))
    with pytest.raises(CodatDatasetInProgressError) as info:
        hook.queue_data_type(COMPANY, "bankAccounts", connection_id=CONNECTION)
    exc = info.value
    assert (exc.data_type, exc.dataset_id, exc.status_code) == ("bankAccounts", DATASET, status)
    assert DATASET in str(exc) and "still in progress" in str(exc)
    assert api.calls.last.request.url.params["connectionId"] == CONNECTION


def test_in_progress_text_under_5xx_is_a_plain_error(hook, api):
    text = f"DatasetAlreadyInProgressException: Cannot queue invoices sync for {COMPANY} as previous sync x"
    api.get(STATUS_PATH).respond(500, json=codat_error(500, text))
    with pytest.raises(CodatAPIError) as info:
        hook.get_data_status(COMPANY)
    assert type(info.value) is CodatAPIError


def test_errors_survive_pickling():
    exc = CodatDatasetInProgressError(
        "m",
        status_code=400,
        error="e",
        correlation_id="c",
        method="POST",
        path="/p",
        data_type="t",
        dataset_id="d",
    )
    copy = pickle.loads(pickle.dumps(exc))
    assert (copy.status_code, copy.dataset_id, copy.data_type, copy.path, str(copy)) == (
        400,
        "d",
        "t",
        "/p",
        "m",
    )


def test_transport_error_after_retries(hook, api, sleeps):
    api.get(STATUS_PATH).mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(CodatAPIError) as info:
        hook.get_data_status(COMPANY)
    assert info.value.status_code is None
    assert info.value.error == "ConnectError"
    assert "after 3 retries" in str(info.value) and "base URL" in str(info.value)
    assert isinstance(info.value.__cause__, httpx.ConnectError)
    assert len(sleeps) == 3
