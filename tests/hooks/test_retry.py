"""Retries: which failures, how long (Retry-After, backoff with jitter), when to give up, POST policies."""

from __future__ import annotations

import email.utils
import logging
import random
import time
from datetime import UTC, datetime

import httpx
import pytest
import time_machine

from airflow_provider_codat.hooks import retry
from airflow_provider_codat.hooks.codat import CodatAPIError, CodatDatasetInProgressError, CodatHook
from tests.hooks.conftest import COMPANY, DATASET, codat_error
from tests.moments import MOMENTS

STATUS_PATH = f"/companies/{COMPANY}/dataStatus"
OK = httpx.Response(200, json={"invoices": {"dataType": "invoices", "currentStatus": "Complete"}})


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_retryable_statuses_are_retried_then_succeed(hook, api, sleeps, status):
    route = api.get(STATUS_PATH).mock(side_effect=[httpx.Response(status, json=codat_error(status, "x")), OK])
    assert hook.get_data_status(COMPANY)["invoices"]["currentStatus"] == "Complete"
    assert route.call_count == 2
    assert len(sleeps) == 1


@pytest.mark.parametrize(
    "exc", [httpx.ConnectError("no"), httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("dropped")]
)
def test_transport_errors_are_retried(hook, api, sleeps, exc):
    route = api.get(STATUS_PATH).mock(side_effect=[exc, OK])
    assert "invoices" in hook.get_data_status(COMPANY)
    assert route.call_count == 2


def test_retry_after_in_seconds_is_honoured(hook, api, sleeps):
    api.get(STATUS_PATH).mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "7"}, json=codat_error(429, "slow down")),
            OK,
        ]
    )
    hook.get_data_status(COMPANY)
    assert sleeps == [7.0]


def test_retry_after_as_http_date_is_honoured(hook, api, sleeps):
    when = email.utils.formatdate(time.time() + 20, usegmt=True)
    api.get(STATUS_PATH).mock(side_effect=[httpx.Response(429, headers={"Retry-After": when}), OK])
    hook.get_data_status(COMPANY)
    assert len(sleeps) == 1
    assert 17 <= sleeps[0] <= 20


@pytest.mark.parametrize("clock_at", MOMENTS, indirect=True)
def test_retry_after_dates_are_utc_on_every_date(clock_at):
    # RFC 5322's "-0000" (UTC, source zone unknown) makes a naive datetime: it must not be read in the local
    # zone time-machine set (London or New York, either side of the DST switch).
    gmt = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert retry.parse_retry_after(gmt) == pytest.approx(30)
    assert retry.parse_retry_after(gmt.replace("GMT", "-0000")) == pytest.approx(30)
    local = email.utils.formatdate(time.time() + 30, localtime=True)  # "+0100", "-0400"...
    assert retry.parse_retry_after(local) == pytest.approx(30)


def test_parse_retry_after_forms():
    now = 1_700_000_000.0
    assert retry.parse_retry_after("120", now) == 120.0
    assert retry.parse_retry_after(email.utils.formatdate(now + 30, usegmt=True), now) == pytest.approx(30)
    assert retry.parse_retry_after(email.utils.formatdate(now - 30, usegmt=True), now) == 0.0
    assert retry.parse_retry_after("-5", now) == 0.0
    assert retry.parse_retry_after("soon", now) is None
    assert retry.parse_retry_after(None, now) is None


def test_backoff_bounds_grow_by_half_and_cap_at_sixty():
    rng = random.Random(7)
    for attempt in range(1, 40):
        step = min(60.0, 0.5 * 1.5 ** (attempt - 1))
        waits = [retry.backoff(attempt, rng) for _ in range(50)]
        assert all(step / 2 <= w <= step for w in waits)
        assert len(set(waits)) > 1  # jitter
    assert retry.backoff(100, rng) <= 60.0


def test_waits_without_retry_after_follow_the_backoff(conn, api, sleeps, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_CODAT_DEFAULT", _conn(max_retries=6))
    h = CodatHook()
    h.sleep = sleeps
    api.get(STATUS_PATH).mock(side_effect=[httpx.Response(503)] * 6 + [OK])
    h.get_data_status(COMPANY)
    assert len(sleeps) == 6
    for n, wait in enumerate(sleeps, start=1):
        step = 0.5 * 1.5 ** (n - 1)
        assert step / 2 <= wait <= step


def test_retries_exhausted_raise_the_last_error(hook, api, sleeps):
    route = api.get(STATUS_PATH).respond(429, headers={"Retry-After": "1"}, json=codat_error(429, "Too many"))
    with pytest.raises(CodatAPIError) as info:
        hook.get_data_status(COMPANY)
    assert route.call_count == 4  # max_retries=3 in the connection
    assert sleeps == [1.0, 1.0, 1.0]
    assert info.value.status_code == 429
    assert "after 3 retries" in str(info.value) and "Retry-After: 1" in str(info.value)


def test_total_time_bound_stops_before_a_long_retry_after(monkeypatch, api, sleeps):
    monkeypatch.setenv("AIRFLOW_CONN_CODAT_DEFAULT", _conn(max_retries=10, max_retry_time=60))
    h = CodatHook()
    h.sleep = sleeps
    route = api.get(STATUS_PATH).mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "40"}),
            httpx.Response(429, headers={"Retry-After": "40"}),
            OK,
        ]
    )
    with pytest.raises(CodatAPIError) as info:
        h.get_data_status(COMPANY)
    assert sleeps == [40.0]  # a second 40 s wait would pass the 60 s budget
    assert route.call_count == 2
    assert info.value.status_code == 429


def test_constructor_overrides_the_extras(conn, api, sleeps):
    h = CodatHook(max_retries=0)
    h.sleep = sleeps
    route = api.get(STATUS_PATH).respond(503)
    with pytest.raises(CodatAPIError):
        h.get_data_status(COMPANY)
    assert route.call_count == 1 and sleeps == []


def test_each_retry_is_logged_once_with_status_and_wait(hook, api, caplog):
    caplog.set_level(logging.WARNING, logger="airflow_provider_codat")
    api.get(STATUS_PATH).mock(
        side_effect=[httpx.Response(503), httpx.Response(429, headers={"Retry-After": "3"}), OK]
    )
    hook.get_data_status(COMPANY)
    retries = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    assert len(retries) == 2
    assert "HTTP 503" in retries[0] and "retry 1/3" in retries[0]
    assert "HTTP 429" in retries[1] and "retry 2/3 in 3.00 s (Retry-After)" in retries[1]


def test_refresh_all_is_retried_after_429_and_connect_errors(hook, api, sleeps):
    route = api.post(f"/companies/{COMPANY}/data/all").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "2"}),
            httpx.ConnectError("no"),
            httpx.Response(204),
        ]
    )
    assert hook.refresh_all_data(COMPANY) is None
    assert route.call_count == 3


@pytest.mark.parametrize(
    "failure", [httpx.Response(500), httpx.Response(503), httpx.Response(408), httpx.ReadTimeout("lost")]
)
def test_refresh_all_is_not_retried_when_codat_may_have_queued(hook, api, sleeps, failure):
    side = [failure, httpx.Response(204)]
    route = api.post(f"/companies/{COMPANY}/data/all").mock(side_effect=side)
    with pytest.raises(CodatAPIError, match="may have queued the syncs anyway"):
        hook.refresh_all_data(COMPANY)
    assert route.call_count == 1 and sleeps == []


def _in_progress(status=400):
    text = (
        f"DatasetAlreadyInProgressException: Cannot queue invoices sync for {COMPANY} as previous sync "
        f"{DATASET} is still in progress"
    )
    return httpx.Response(status, json=codat_error(status, text))


@pytest.mark.parametrize(
    "lost", [httpx.ReadTimeout("lost"), httpx.Response(502), httpx.RemoteProtocolError("x")]
)
def test_queue_retry_after_a_lost_answer_returns_the_dataset_it_queued(hook, api, lost):
    queue = api.post(f"/companies/{COMPANY}/data/queue/invoices").mock(side_effect=[lost, _in_progress(409)])
    pull = {"id": DATASET, "companyId": COMPANY, "dataType": "invoices", "status": "Queued"}
    history = api.get(f"/companies/{COMPANY}/data/history/{DATASET}").respond(200, json=pull)
    assert hook.queue_data_type(COMPANY, "invoices") == pull
    assert queue.call_count == 2 and history.call_count == 1


def test_queue_in_progress_after_only_a_429_is_someone_elses_sync(hook, api):
    api.post(f"/companies/{COMPANY}/data/queue/invoices").mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": "0"}), _in_progress()]
    )
    with pytest.raises(CodatDatasetInProgressError) as info:
        hook.queue_data_type(COMPANY, "invoices")
    assert info.value.dataset_id == DATASET


def test_queue_returns_the_pull_operation(hook, api):
    pull = {"id": DATASET, "companyId": COMPANY, "dataType": "invoices", "status": "Initial"}
    api.post(f"/companies/{COMPANY}/data/queue/invoices").respond(200, json=pull)
    assert hook.queue_data_type(COMPANY, "invoices") == pull
    assert "connectionId" not in api.calls.last.request.url.params


def _conn(**extra):
    from tests.hooks.conftest import conn_json

    return conn_json(**extra)


# Formatted at run time from a pinned clock: a date in a test id would differ between pytest-xdist's workers.
RESET_FORMATS = {
    "iso": lambda moment: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment)),
    "http-date": lambda moment: email.utils.formatdate(moment, usegmt=True),
}


@pytest.mark.parametrize("reset_format", sorted(RESET_FORMATS))
def test_an_empty_quota_stops_requests_until_its_reset(hook, api, reset_format):
    with time_machine.travel(datetime(2026, 2, 28, 23, 30, tzinfo=UTC), tick=True):
        _an_empty_quota_stops_requests(hook, api, RESET_FORMATS[reset_format](time.time() + 3600))


def _an_empty_quota_stops_requests(hook, api, reset: str) -> None:
    empty = {"X-Rate-Limit-Limit": "1000", "X-Rate-Limit-Remaining": "0", "X-Rate-Limit-Reset": reset}
    route = api.get(STATUS_PATH).mock(return_value=httpx.Response(200, headers=empty, json=OK.json()))
    assert "invoices" in hook.get_data_status(COMPANY)
    with pytest.raises(CodatAPIError, match=r"quota is used up .* until .*no request was sent") as info:
        hook.get_data_status(COMPANY)
    assert info.value.status_code == 429
    assert route.call_count == 1  # the second call never left


def test_a_quota_past_its_reset_lets_requests_through(hook, api):
    past = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))
    empty = {"X-Rate-Limit-Remaining": "0", "X-Rate-Limit-Reset": past}
    route = api.get(STATUS_PATH).mock(return_value=httpx.Response(200, headers=empty, json=OK.json()))
    hook.get_data_status(COMPANY)
    hook.get_data_status(COMPANY)
    assert route.call_count == 2
