"""Responses and page bodies are freed by reference counting, not left for the cyclic garbage collector.

A page body is up to ~1 MB; if each response sits in a reference cycle, an extract holds every page read since
the last collection (780 MB instead of ~170 MB at a million records with the GC's thresholds raised). Each test
runs with the cyclic GC disabled and never calls ``gc.collect()``: a weak reference is dead only if reference
counting freed the object.
"""

from __future__ import annotations

import gc
import json
import weakref

import httpx
import pytest

from airflow_provider_codat.hooks import paging
from airflow_provider_codat.hooks.codat import CodatAPIError, CodatHook

UNKNOWN_COMPANY = "00000000-0000-4000-8000-000000000000"


class Page(list):
    """A ``results`` list that can be weakly referenced (a plain list cannot)."""


@pytest.fixture
def no_gc(monkeypatch):
    # Page bodies decoded into weakly referenceable lists, so that a test can see the parsed page freed too.
    def decode(response: httpx.Response, **kwargs):
        body = json.loads(response.content, **kwargs)
        if isinstance(body, dict) and isinstance(body.get("results"), list):
            body["results"] = Page(body["results"])
        return body

    monkeypatch.setattr(httpx.Response, "json", decode)
    was_enabled = gc.isenabled()
    gc.collect()  # start from a clean heap; no collection happens during the test
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@pytest.fixture
def responses():
    """Weak references to every response the hook receives (filled by a client event hook)."""
    return []


@pytest.fixture
def hook(sim, responses):
    h = CodatHook()
    h.sleep = lambda seconds: None
    h.client.event_hooks["response"].append(lambda r: responses.append(weakref.ref(r)))
    yield h
    h.close()


@pytest.fixture
async def ahook(sim, responses):
    h = CodatHook()

    async def no_sleep(seconds):
        return None

    async def record(response):
        responses.append(weakref.ref(response))

    h.async_sleep = no_sleep
    (await h._aclient()).event_hooks["response"].append(record)
    yield h
    await h.aclose()


def alive(refs) -> list:
    return [r() for r in refs if r() is not None]


def company_of(sim) -> str:
    return sim.control.companies()[0]["id"]


def test_get_frees_its_response(sim, hook, responses, no_gc):
    company = company_of(sim)
    assert hook.get_company(company)["id"] == company
    assert len(responses) == 1
    assert alive(responses) == []


@pytest.mark.codat_simulator(records=30)
def test_iter_pages_frees_each_page_before_the_next(sim, hook, responses, no_gc):
    company = company_of(sim)
    pages = []
    for page in hook.iter_pages(company, "invoices", page_size=5):
        assert isinstance(page, paging.Page) and page
        # Only the page in hand is alive: every earlier page and every response (this one's too) are freed.
        assert alive(pages) == [] and alive(responses) == []
        pages.append(weakref.ref(page))
    del page
    assert len(pages) == 6 and len(responses) == 6
    assert alive(pages) == [] and alive(responses) == []


def test_retried_5xx_frees_both_responses(sim, hook, responses, no_gc):
    company = company_of(sim)
    sim.control.add_fault("server_error", path="dataStatus", status=503, times=1)
    assert "invoices" in hook.get_data_status(company)
    assert len(responses) == 2
    assert alive(responses) == []


def test_retried_drop_frees_the_responses(sim, hook, responses, no_gc):
    company = company_of(sim)
    sim.control.add_fault("server_error", path="dataStatus", status=500, times=1)
    sim.control.add_fault("drop", path="dataStatus", times=1)  # headers, then the connection closes mid-body
    assert "invoices" in hook.get_data_status(company)
    assert len(responses) == 3  # the dropped one, the 500, the answer
    assert alive(responses) == []


def test_error_response_is_freed_with_the_error(sim, hook, responses, no_gc):
    with pytest.raises(CodatAPIError) as info:
        hook.get_company(UNKNOWN_COMPANY)
    assert info.value.status_code == 404
    del info
    assert len(responses) == 1
    assert alive(responses) == []


def test_giving_up_after_drops_frees_the_error_and_responses(sim, responses, no_gc):
    with CodatHook(max_retries=1) as hook:
        hook.sleep = lambda seconds: None
        hook.client.event_hooks["response"].append(lambda r: responses.append(weakref.ref(r)))
        sim.control.add_fault("drop", path="dataStatus", times=2)
        with pytest.raises(CodatAPIError) as info:
            hook.get_data_status(company_of(sim))
    assert isinstance(info.value.__cause__, httpx.TransportError)
    errors = [weakref.ref(info.value), weakref.ref(info.value.__cause__)]
    del info
    assert len(responses) == 2
    assert alive(responses) == [] and alive(errors) == []


async def test_async_get_frees_its_response(sim, ahook, responses, no_gc):
    company = company_of(sim)
    assert (await ahook.aget_company(company))["id"] == company
    assert len(responses) == 1
    assert alive(responses) == []


async def test_async_retried_5xx_and_drop_free_the_responses(sim, ahook, responses, no_gc):
    company = company_of(sim)
    sim.control.add_fault("server_error", path="dataStatus", status=503, times=1)
    assert "invoices" in await ahook.aget_data_status(company)
    sim.control.add_fault("server_error", path="dataStatus", status=500, times=1)
    sim.control.add_fault("drop", path="dataStatus", times=1)
    assert "invoices" in await ahook.aget_data_status(company)
    assert len(responses) == 5  # 503, answer; dropped, 500, answer
    assert alive(responses) == []
