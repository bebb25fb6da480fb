"""Codat's three rate limits over real HTTP: per minute per IP, the daily quota, concurrent per company; their
headers, their 429s, the counters the control API reports and the connection extra that keeps a client under
them. Windows and resets are crossed by moving the simulated clock, so nothing here waits for a minute."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime

import httpx
import pytest
import time_machine

from airflow_provider_codat.simulator import SimulatorState
from airflow_provider_codat.simulator.limits import busiest_window
from airflow_provider_codat.simulator.pytest_plugin import TEST_REQUESTS_PER_MINUTE

HEADERS = ("x-rate-limit-limit", "x-rate-limit-remaining", "x-rate-limit-reset")
TOO_MANY = "You have made too many requests in a given amount of time; please retry later."


@pytest.fixture(autouse=True)
def _midday_utc():
    """Every test starts at 12:00 UTC, with time passing: the daily quota resets at 00:00 UTC, and a test that
    moves the simulated clock a minute on must not cross a real midnight (a test's own travel overrides it)."""
    with time_machine.travel(datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC), tick=True):
        yield


def remaining(response: httpx.Response) -> int:
    return int(response.headers["x-rate-limit-remaining"])


def assert_limited(response: httpx.Response, retry_after: str) -> None:
    """Codat's 429: its error body, ``Retry-After`` and the quota headers."""
    assert response.status_code == 429
    assert response.headers["retry-after"] == retry_after
    body = response.json()
    assert body["statusCode"] == 429 and body["error"] == TOO_MANY and body["canBeRetried"] == "Unknown"
    assert all(name in response.headers for name in HEADERS)


@pytest.mark.codat_simulator(requests_per_minute=3)
def test_the_minute_window_fills_then_slides(sim, client):
    answers = [client.get("/companies") for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    refused = client.get("/companies")
    # Room comes back 60 s after the second arrival: the refused one counts against the window too.
    assert_limited(refused, "60")
    assert remaining(refused) == remaining(answers[-1])  # a refused request does not use the daily quota
    sim.control.advance(59)
    assert_limited(client.get("/companies"), "1")
    sim.control.advance(1)
    assert client.get("/companies").status_code == 200
    log = sim.control.request_log()
    assert [(e["status"], e["limit"]) for e in log] == [(200, None)] * 3 + [(429, "minute")] * 2 + [
        (200, None)
    ]
    stats = sim.control.rate_limits()
    assert stats["requests"] == 6 and stats["busiest_minute"] == 5
    assert stats["rejected"] == {"minute": 2, "daily": 0, "concurrent": 0}
    assert stats["quota"]["used"] == 4


@pytest.mark.codat_simulator(requests_per_minute=2)
def test_the_minute_limit_is_per_client_ip(sim, client):
    assert [client.get("/companies").status_code for _ in range(3)] == [200, 200, 429]
    # Linux answers on all of 127.0.0.0/8: another loopback address is another client.
    other = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(base_url=sim.base_url, headers=sim.auth_header, transport=other) as second:
        assert second.get("/companies").status_code == 200
    assert [e["client"] for e in sim.control.request_log()] == ["127.0.0.1"] * 3 + ["127.0.0.2"]


@pytest.mark.codat_simulator(daily_quota=3)
def test_the_daily_quota_runs_out_and_resets_at_midnight_utc(sim, client):
    with time_machine.travel(datetime(2026, 11, 21, 23, 59, 0, tzinfo=UTC), tick=False):
        assert [remaining(client.get("/companies")) for _ in range(3)] == [2, 1, 0]
        spent = client.get("/companies")
        assert_limited(spent, "60")
        assert spent.headers["x-rate-limit-limit"] == "3"
        assert spent.headers["x-rate-limit-remaining"] == "0"
        assert spent.headers["x-rate-limit-reset"] == "2026-11-22T00:00:00Z"
        sim.control.advance(60)
        fresh = client.get("/companies")
        assert fresh.status_code == 200 and remaining(fresh) == 2
        assert fresh.headers["x-rate-limit-reset"] == "2026-11-23T00:00:00Z"
    assert sim.control.rate_limits()["rejected"]["daily"] == 1


@pytest.mark.codat_simulator(daily_quota=2, quota_period_seconds=30)
def test_a_quota_period_in_seconds_resets_on_its_own_schedule(sim, client):
    assert [client.get("/companies").status_code for _ in range(2)] == [200, 200]
    spent = client.get("/companies")
    # The periods start on the whole second the state was made.
    assert spent.status_code == 429 and 28 <= int(spent.headers["retry-after"]) <= 30
    reset = datetime.fromisoformat(spent.headers["x-rate-limit-reset"])
    assert 28 <= reset.timestamp() - time.time() <= 30
    assert sim.control.rate_limits()["quota"] == {
        "limit": 2,
        "used": 2,
        "remaining": 0,
        "reset": spent.headers["x-rate-limit-reset"],
    }
    sim.control.advance(30)
    fresh = client.get("/companies")
    assert fresh.status_code == 200 and remaining(fresh) == 1
    assert datetime.fromisoformat(fresh.headers["x-rate-limit-reset"]).timestamp() == reset.timestamp() + 30


@pytest.mark.codat_simulator(companies=2, quota_period_seconds=60)
def test_codat_default_quota_follows_the_linked_companies_from_one_period_to_the_next(sim, client):
    # Company 1 is linked, company 2's only connection is deauthorized: 1000 x (1 + 1).
    assert client.get("/companies").headers["x-rate-limit-limit"] == "2000"
    company_id = sim.control.linked_company_ids()[0]
    for connection in sim.control.companies()[0]["connections"]:
        sim.control.set_connection_status(company_id, connection["id"], "Deauthorized")
    assert client.get("/companies").headers["x-rate-limit-limit"] == "2000"  # worked out once a period
    sim.control.advance(60)
    assert client.get("/companies").headers["x-rate-limit-limit"] == "1000"


def test_only_served_requests_use_the_quota_and_every_answer_has_the_headers(sim, client, company_id):
    served = client.get("/companies")
    assert remaining(served) == 5000 - 1
    unknown = client.get("/companies/no-such-company")
    assert unknown.status_code == 404 and remaining(unknown) == 5000 - 2  # Codat answered it
    bad_key = httpx.get(f"{sim.base_url}/companies", headers={"Authorization": "Basic bm9wZQ=="})
    assert bad_key.status_code == 401 and remaining(bad_key) == 5000 - 2
    sim.control.add_fault("server_error", status=503)
    injected = client.get(f"/companies/{company_id}")
    assert injected.status_code == 503 and remaining(injected) == 5000 - 2
    for answer in (served, unknown, bad_key, injected):
        assert answer.headers["x-rate-limit-limit"] == "5000"
        assert answer.headers["x-rate-limit-reset"].endswith("T00:00:00Z")
    assert sim.control.rate_limits()["quota"]["used"] == 2


@pytest.mark.codat_simulator(concurrent_per_company=2)
def test_concurrency_is_limited_per_company(sim, client):
    first, second = sim.control.linked_company_ids()[:2]
    sim.control.add_fault("latency", path=f"{first}/dataStatus", delay=0.5, times=2)
    slow: list[int] = []
    threads = [
        threading.Thread(target=lambda: slow.append(client.get(f"/companies/{first}/dataStatus").status_code))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5
    while sim.control.rate_limits()["in_flight"].get(first) != 2:
        assert time.monotonic() < deadline, "the slow requests never were in flight together"
        time.sleep(0.01)
    assert_limited(client.get(f"/companies/{first}/data/invoices"), "1")
    assert client.get(f"/companies/{second}/dataStatus").status_code == 200
    assert client.get("/companies").status_code == 200  # not about one company
    for thread in threads:
        thread.join()
    assert slow == [200, 200]
    assert client.get(f"/companies/{first}").status_code == 200
    stats = sim.control.rate_limits()
    assert stats["in_flight"] == {}
    assert stats["peak_in_flight"] == {first: 2, second: 1}
    assert stats["rejected"] == {"minute": 0, "daily": 0, "concurrent": 1}
    assert stats["quota"]["used"] == 5  # every request but the refused one
    sim.control.reset_request_log()
    assert sim.control.rate_limits()["peak_in_flight"] == {}


def test_limits_change_on_a_running_simulator_over_http(sim, client):
    base = f"{sim.base_url}/_simulator"
    assert sim.control.rate_limits()["limits"] == {
        "requests_per_minute": TEST_REQUESTS_PER_MINUTE,
        "daily_quota": None,
        "quota_period_seconds": None,
        "concurrent_per_company": 10,
    }
    changed = httpx.get(f"{base}/set_rate_limits", params={"requests_per_minute": "1"})
    assert changed.json()["result"]["requests_per_minute"] == 1
    assert json.loads(sim.connection_json)["extra"]["requests_per_minute"] == 1  # never 0
    assert [client.get("/companies").status_code for _ in range(2)] == [200, 429]
    httpx.post(f"{base}/set_rate_limits", json={"requests_per_minute": None, "daily_quota": 1})
    assert "requests_per_minute" not in json.loads(sim.connection_json)["extra"]
    assert client.get("/companies").status_code == 429  # the period already used its one request
    assert httpx.get(f"{base}/rate_limits").json()["result"]["rejected"] == {
        "minute": 1,
        "daily": 1,
        "concurrent": 0,
    }
    for bad, named in [
        ({"daily_quota": 0}, "daily_quota"),
        ({"requests_per_minute": -5}, "requests_per_minute"),
        ({"quota_period_seconds": "soon"}, "quota_period_seconds"),
        ({"per_hour": 5}, "per_hour"),
    ]:
        refused = httpx.post(f"{base}/set_rate_limits", json=bad)
        assert refused.status_code == 400 and named in refused.json()["error"]
    assert sim.control.rate_limits()["limits"]["daily_quota"] == 1


@pytest.mark.parametrize(("per_minute", "extra"), [(1000, 900), (600, 540), (7, 6), (None, None), (0, None)])
def test_the_connection_carries_a_budget_under_the_per_minute_limit(sim, per_minute, extra):
    sim.control.set_rate_limits(requests_per_minute=per_minute)
    assert json.loads(sim.connection_json)["extra"].get("requests_per_minute") == extra


def test_codat_defaults_and_bad_limits_named():
    settings = SimulatorState(companies=1).limits.settings
    assert (settings.requests_per_minute, settings.daily_quota, settings.concurrent_per_company) == (
        1000,
        None,
        10,
    )
    assert settings.quota_period_seconds is None
    with pytest.raises(ValueError, match="concurrent_per_company"):
        SimulatorState(concurrent_per_company=2.5)
    with pytest.raises(ValueError, match="quota_period_seconds must be > 0"):
        SimulatorState(quota_period_seconds=0)


def test_busiest_window_counts_arrivals_in_any_sixty_seconds():
    assert busiest_window([]) == 0
    assert busiest_window([0, 10, 59.9, 60, 69, 200]) == 4  # (9, 69]: 10, 59.9, 60 and 69
    assert busiest_window([5, 1, 3]) == 3
    assert busiest_window([0, 60, 120]) == 1  # a window is open at its start
