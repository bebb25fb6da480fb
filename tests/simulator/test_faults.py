"""Injected faults, over real HTTP, switched on through the Python and the HTTP control API."""

from __future__ import annotations

import time

import httpx
import pytest


def test_rate_limit_answers_429_with_retry_after_then_recovers(sim, client):
    sim.control.add_fault("rate_limit", path="^/companies$", retry_after=7, times=2)
    for _ in range(2):
        limited = client.get("/companies")
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "7"
        assert limited.json()["statusCode"] == 429
    assert client.get("/companies").status_code == 200


def test_rate_limit_with_http_date(sim, client):
    sim.control.add_fault("rate_limit", retry_after="Wed, 21 Oct 2026 07:28:00 GMT")
    assert client.get("/companies").headers["retry-after"] == "Wed, 21 Oct 2026 07:28:00 GMT"


def test_server_error_500_is_json(sim, client):
    sim.control.add_fault("server_error", status=500)
    response = client.get("/companies")
    assert response.status_code == 500
    assert response.json()["statusCode"] == 500


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_errors_have_html_bodies(sim, client, status):
    sim.control.add_fault("server_error", status=status)
    response = client.get("/companies")
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    with pytest.raises(ValueError):
        response.json()


def test_fault_matches_path_and_method_only(sim, client, company_id):
    sim.control.add_fault("server_error", path=r"/data/queue/", method="POST", times=None)
    assert client.get(f"/companies/{company_id}/dataStatus").status_code == 200
    assert client.post(f"/companies/{company_id}/data/queue/invoices").status_code == 500
    assert client.post(f"/companies/{company_id}/data/queue/bills").status_code == 500
    sim.control.clear_faults()
    assert client.post(f"/companies/{company_id}/data/queue/bills").status_code == 200


def test_latency_delays_the_answer(sim, client):
    sim.control.add_fault("latency", delay=1.0)
    started = time.monotonic()
    assert client.get("/companies").status_code == 200
    assert time.monotonic() - started >= 1.0
    started = time.monotonic()
    client.get("/companies")
    assert time.monotonic() - started < 1.0  # the fault fired once; the margin absorbs a busy machine


def test_drop_closes_the_connection_mid_response(sim, client):
    sim.control.add_fault("drop", path="^/companies$")
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        client.get("/companies")
    assert client.get("/companies").status_code == 200


def test_trickle_sends_the_real_body_one_byte_at_a_time(sim, client, company_id):
    sim.control.add_fault("trickle", path="dataStatus$", delay=0.1)
    started = time.monotonic()
    received = b""
    # Every read returns within httpx's (per-read) timeout: only a whole-request deadline can stop this.
    with client.stream("GET", f"/companies/{company_id}/dataStatus", timeout=1) as response:
        assert response.status_code == 200
        for chunk in response.iter_raw():
            received += chunk
            if time.monotonic() - started > 0.6:
                break
    assert 2 <= len(received) <= 10
    assert received == client.get(f"/companies/{company_id}/dataStatus").content[: len(received)]


@pytest.mark.parametrize("body", [["invoices"], "dataStatus", {"invoices": {"dataType": "invoices"}}])
def test_malformed_answers_200_with_the_given_body(sim, client, company_id, body):
    sim.control.add_fault("malformed", path="dataStatus$", body=body)
    response = client.get(f"/companies/{company_id}/dataStatus")
    assert (response.status_code, response.json()) == (200, body)
    assert isinstance(client.get(f"/companies/{company_id}/dataStatus").json()["invoices"], dict)


def test_write_during_paging_changes_the_type_after_page_one(sim, client, company_id):
    url = f"/companies/{company_id}/data/invoices"
    before = client.get(f"/companies/{company_id}/dataStatus").json()["invoices"]
    sim.control.add_fault("write_during_paging", path="/data/invoices$")
    first = client.get(url, params={"pageSize": 20, "page": 1}).json()
    assert first["totalResults"] == 50
    second = client.get(url, params={"pageSize": 20, "page": 2}).json()
    assert second["totalResults"] == 52  # two created
    after = client.get(f"/companies/{company_id}/dataStatus").json()["invoices"]
    assert after["latestSuccessfulSyncId"] != before["latestSuccessfulSyncId"]
    assert after["lastSuccessfulSync"] > before["lastSuccessfulSync"]
    assert client.get(url, params={"pageSize": 20, "page": 1}).json()["totalResults"] == 52  # used up


def test_faults_through_the_http_control_api(sim, client):
    added = httpx.post(f"{sim.base_url}/_simulator/add_fault", json={"kind": "rate_limit", "retry_after": 2})
    assert added.status_code == 200
    assert added.json()["result"]["kind"] == "rate_limit"
    assert [f["kind"] for f in httpx.get(f"{sim.base_url}/_simulator/faults").json()["result"]] == [
        "rate_limit"
    ]
    assert client.get("/companies").status_code == 429
    bad = httpx.post(f"{sim.base_url}/_simulator/add_fault", json={"kind": "meteor"})
    assert bad.status_code == 400


def test_request_log_excludes_control_calls(sim, client, company_id):
    sim.control.reset_request_log()
    before = time.time()
    client.get("/companies", params={"page": 1})
    httpx.get(f"{sim.base_url}/_simulator/companies")
    client.post(f"/companies/{company_id}/data/queue/invoices")
    after = time.time()
    log = sim.control.request_log()
    arrivals = [entry.pop("time") for entry in log]
    assert before <= arrivals[0] <= arrivals[1] <= after
    assert log == [
        {
            "method": "GET",
            "path": "/companies",
            "query": "page=1",
            "client": "127.0.0.1",
            "status": 200,
            "limit": None,
        },
        {
            "method": "POST",
            "path": f"/companies/{company_id}/data/queue/invoices",
            "query": "",
            "client": "127.0.0.1",
            "status": 200,
            "limit": None,
        },
    ]
    assert sim.control.request_count() == 2


def test_http_control_operations(sim, client, company_id):
    base = f"{sim.base_url}/_simulator"
    assert httpx.post(f"{base}/set_sync_seconds", json={"seconds": 10}).status_code == 200
    dataset = client.post(f"/companies/{company_id}/data/queue/invoices").json()
    assert dataset["status"] == "Queued"
    assert httpx.post(f"{base}/advance", json={"seconds": 11}).status_code == 200
    assert client.get(f"/companies/{company_id}/data/history/{dataset['id']}").json()["status"] == "Complete"
    records = httpx.post(f"{base}/records", json={"company_id": company_id, "data_type": "bills"}).json()[
        "result"
    ]
    assert len(records) == 50
    assert httpx.post(f"{base}/nope").status_code == 404
    assert httpx.post(f"{base}/advance", json={"wrong": 1}).status_code == 400
    httpx.post(f"{base}/reset", json={"companies": 2, "seed": 3})
    assert client.get("/companies").json()["totalResults"] == 2


def test_fresh_state_per_test_part_one(sim):
    sim.control.add_fault("server_error", times=None)
    sim.control.advance(1000)


def test_fresh_state_per_test_part_two(sim, client):
    # Runs after part one: its fault and clock offset must be gone.
    assert client.get("/companies").status_code == 200
    assert sim.state.clock.offset == 0
