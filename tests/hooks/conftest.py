"""Fixtures for the hook's tests: a connection in the environment (a fake host, or the simulator) and a hook that
never really sleeps."""

from __future__ import annotations

import json

import pytest
import respx

from airflow_provider_codat.hooks.codat import CodatHook

BASE = "https://codat.test"
API_KEY = "sk-test-3b1e9f0c7d2a4e51"
COMPANY = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
CONNECTION = "51baa045-4836-4317-a42e-3542e991e581"
DATASET = "9a4b7c2e-1f3d-4e5a-8b6c-7d8e9f0a1b2c"


def conn_json(**extra) -> str:
    return json.dumps({"conn_type": "codat", "host": BASE, "password": API_KEY, "extra": extra})


@pytest.fixture
def conn(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_CODAT_DEFAULT", conn_json(max_retries=3, timeout=5))


@pytest.fixture
def sim(codat_simulator, monkeypatch):
    """The running simulator (``codat_simulator``), with ``codat_default`` pointing at it."""
    for key, value in codat_simulator.conn_env.items():
        monkeypatch.setenv(key, value)
    return codat_simulator


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def hook(conn, sleeps) -> CodatHook:
    h = CodatHook()
    h.sleep = sleeps
    yield h
    h.close()


@pytest.fixture
def api():
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


def page(results, number=1, size=2, total=None, next_page=None, path="/companies"):
    links = {"self": {"href": path}, "current": {"href": f"{path}?page={number}&pageSize={size}"}}
    if next_page is not None:
        links["next"] = {"href": f"{path}?page={next_page}&pageSize={size}"}
    return {
        "results": results,
        "pageNumber": number,
        "pageSize": size,
        "totalResults": len(results) if total is None else total,
        "_links": links,
    }


def codat_error(status: int, error: str, correlation_id: str = "corr-1") -> dict:
    return {
        "statusCode": status,
        "service": "PublicApi",
        "error": error,
        "correlationId": correlation_id,
        "validation": None,
        "canBeRetried": "Unknown",
        "detailedErrorCode": 0,
    }
