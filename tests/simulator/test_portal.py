"""The simulator's company page, where the simulator connection's "Codat company" links land."""

from __future__ import annotations

import json

import httpx

from airflow_provider_codat.hooks.codat import CodatHook
from airflow_provider_codat.simulator.portal import company_page


def test_the_hook_link_opens_the_company_page_without_a_key(sim, company_id, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_CODAT_DEFAULT", sim.connection_json)
    url = CodatHook().portal_url(company_id)
    assert url == f"{sim.base_url}/_simulator/companies/{company_id}/summary"
    sim.control.mutate(company_id, "invoices", created=1)
    page = httpx.get(url)  # a browser sends no API key
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    company = next(c for c in sim.control.companies() if c["id"] == company_id)
    assert company["name"] in page.text and company_id in page.text
    for connection in company["connections"]:
        assert connection["id"] in page.text
    assert "<td>invoices</td>" in page.text
    assert sim.control.request_count() == 0  # a page view is not a Codat API call


def test_an_unknown_company_is_a_404_page(sim):
    page = httpx.get(f"{sim.base_url}/_simulator/companies/00000000-0000-0000-0000-000000000000/summary")
    assert page.status_code == 404 and "No such company" in page.text


def test_names_are_escaped():
    company = {"id": "c1", "name": "<script>alert(1)</script> & Co", "dataConnections": []}
    html = company_page(company, {"invoices": {"currentStatus": "Complete"}})
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in html


def test_the_control_api_still_answers_beside_the_pages(sim):
    answer = httpx.get(f"{sim.base_url}/_simulator/companies")
    assert answer.status_code == 200 and json.loads(answer.text)["result"]
