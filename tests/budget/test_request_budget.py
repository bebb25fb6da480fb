"""The request budget on its own: rates shared by processes, places per company, the daily quota, settings."""

from __future__ import annotations

import multiprocessing
import threading
import time

import httpx
import pytest

from airflow_provider_codat.budget import BudgetSettings, Quota, RequestBudget, budget_settings_from
from airflow_provider_codat.budget.request_budget import rates_for
from airflow_provider_codat.errors import CodatQuotaExhaustedError, CodatValidationError
from airflow_provider_codat.hooks._transport import Call

COMPANY = "3fa85f64-5717-4562-b3fc-2c963f66afa6"


def _budget(store: str, **kw) -> RequestBudget:
    return RequestBudget(BudgetSettings(store=store, key="api.test", **kw))


def test_a_minute_is_spread_over_five_second_slices():
    assert [(r.limit, r.interval) for r in rates_for(900)] == [(75, 5_000), (900, 60_000)]
    assert [(r.limit, r.interval) for r in rates_for(7)] == [(1, 5_000), (7, 60_000)]


def _take_at_once(store: str, attempts: int, admitted) -> None:
    budget = _budget(store, requests_per_minute=60)
    for _ in range(attempts):
        try:
            budget.take_token(deadline=time.time())
        except httpx.PoolTimeout:
            continue
        with admitted.get_lock():
            admitted.value += 1


def test_processes_sharing_a_sqlite_store_share_one_rate(tmp_path):
    """A new file gives its first token after one 5-second slice; then three processes ask at once for 20
    tokens each at 60 a minute: together they get what is left of the slice of 5."""
    store = f"sqlite:///{tmp_path / 'budget.sqlite'}"
    started = time.monotonic()
    _budget(store, requests_per_minute=60).take_token()
    assert 4.5 <= time.monotonic() - started < 10
    admitted = multiprocessing.get_context("fork").Value("i", 0)
    workers = [
        multiprocessing.get_context("fork").Process(target=_take_at_once, args=(store, 20, admitted))
        for _ in range(3)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    assert admitted.value == 4


def test_a_token_is_waited_for_not_refused():
    budget = _budget("memory://waited", requests_per_minute=12)  # one token every 5 seconds
    budget.take_token()
    started = time.monotonic()
    with pytest.raises(httpx.PoolTimeout):
        budget.take_token(deadline=time.time() + 0.3)
    assert time.monotonic() - started < 2


def test_places_in_flight_per_company_across_stores_of_one_file(tmp_path):
    store = f"sqlite:///{tmp_path / 'budget.sqlite'}"
    first, second = _budget(store, concurrent_per_company=2), _budget(store, concurrent_per_company=2)
    entered = threading.Event()
    with first.company_place(COMPANY, ttl=30), second.company_place(COMPANY, ttl=30):
        third = threading.Thread(
            target=lambda: first.company_place(COMPANY, ttl=30).__enter__() and None or entered.set()
        )
        third.start()
        time.sleep(0.5)
        assert not entered.is_set()  # the company's two places are taken, in whichever process
        with first.company_place("another-company", ttl=30):
            pass  # another company's places are its own
    third.join(5)
    assert entered.is_set()
    # The thread above still holds one place: of the other, one is left.
    with (
        pytest.raises(httpx.PoolTimeout, match="company"),
        first.company_place(COMPANY, ttl=30),
        first.company_place(COMPANY, ttl=30, deadline=time.time()),
    ):
        pass


def test_a_lease_of_a_killed_process_expires(tmp_path):
    store = _budget(f"sqlite:///{tmp_path / 'b.sqlite'}").store
    assert store.take_lease(COMPANY, 1, ttl=0.2) is not None  # never given back, as by a killed process
    assert store.take_lease(COMPANY, 1, ttl=0.2) is None
    time.sleep(0.3)
    assert store.take_lease(COMPANY, 1, ttl=0.2) is not None


@pytest.mark.parametrize("store", ["memory://quota", "sqlite"])
def test_the_quota_reserve_stops_new_work_and_an_empty_quota_stops_everything(store, tmp_path):
    store = f"sqlite:///{tmp_path / 'b.sqlite'}" if store == "sqlite" else store
    spender, other = _budget(store, quota_reserve=10), _budget(store, quota_reserve=10)
    resets_at = time.time() + 3600
    spender.note(Quota(limit=1000, remaining=10, resets_at=resets_at, observed_at=time.time()))
    other._quota = (-1e9, None)  # another process: it reads the store
    other.check_quota(starts_work=False, method="GET", path="/companies/x/dataStatus")
    with pytest.raises(CodatQuotaExhaustedError, match="down to 10 requests.*until") as info:
        other.check_quota(starts_work=True, method="GET", path="/companies/x/data/invoices")
    assert info.value.resets_at == resets_at and "no request was sent" in info.value.message
    spender.note(Quota(limit=1000, remaining=0, resets_at=resets_at, observed_at=time.time()))
    other._quota = (-1e9, None)
    with pytest.raises(CodatQuotaExhaustedError, match="used up"):
        other.check_quota(starts_work=False, method="GET", path="/companies/x/dataStatus")


def test_a_quota_whose_reset_has_passed_no_longer_stops_anything():
    budget = _budget("memory://passed", quota_reserve=10)
    budget.note(Quota(limit=1000, remaining=0, resets_at=time.time() - 1, observed_at=time.time()))
    budget.check_quota(starts_work=True, method="GET", path="/companies")


def test_the_reserve_defaults_to_two_percent_of_the_quota_and_at_least_100():
    settings = BudgetSettings()
    assert settings.reserve_for(None) == 100 and settings.reserve_for(1_000_000) == 20_000
    assert BudgetSettings(quota_reserve=7).reserve_for(1_000_000) == 7


def test_which_requests_start_work_and_whose_company_they_are():
    assert Call("POST", f"/companies/{COMPANY}/data/queue/invoices").starts_work
    assert Call("GET", f"/companies/{COMPANY}/data/invoices", {"page": 1}).starts_work
    assert not Call("GET", f"/companies/{COMPANY}/data/invoices", {"page": 2}).starts_work
    assert not Call("GET", f"/companies/{COMPANY}/dataStatus").starts_work
    assert not Call("GET", f"/companies/{COMPANY}/data/history/abc").starts_work
    assert Call("GET", f"/companies/{COMPANY}/dataStatus").company == COMPANY
    assert Call("GET", f"/companies/{COMPANY}").company == COMPANY
    assert Call("GET", "/companies", {"page": 1}).company is None


def test_settings_from_the_connection(monkeypatch):
    monkeypatch.delenv("CODAT_REQUEST_BUDGET_STORE")
    monkeypatch.setenv("AIRFLOW_HOME", "/srv/airflow")
    settings = budget_settings_from({}, "codat_default", "https://api.codat.io")
    assert settings == BudgetSettings(store="sqlite:////srv/airflow/codat_request_budget.sqlite")
    custom = budget_settings_from(
        {
            "requests_per_minute": "300",
            "concurrent_requests_per_company": 4,
            "request_budget_store": "redis://redis:6379/1",
            "request_budget_key": "our-codat-client",
            "quota_reserve": "0",
        },
        "codat_default",
        "http://127.0.0.1:8765",
    )
    assert custom == BudgetSettings(300, 4, "redis://redis:6379/1", "our-codat-client", 0)
    assert budget_settings_from({}, "c", "http://127.0.0.1:8765").key == "127.0.0.1:8765"


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"requests_per_minute": "fast"}, "requests_per_minute"),
        ({"requests_per_minute": 0}, "requests_per_minute"),
        ({"concurrent_requests_per_company": -1}, "concurrent_requests_per_company"),
        ({"quota_reserve": "some"}, "quota_reserve"),
        ({"request_budget_store": "postgres://db/airflow"}, "request_budget_store"),
    ],
)
def test_bad_budget_extras_are_refused_by_name(extra, named):
    with pytest.raises(CodatValidationError, match=named):
        budget_settings_from(extra, "codat_default", "https://api.codat.io")
