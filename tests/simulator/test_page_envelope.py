"""Paging over real HTTP: arithmetic, the envelope, relative links, limits."""

from __future__ import annotations

import pytest


def test_pages_split_the_collection_and_links_walk_it(sim, client, company_id):
    truth = [record["id"] for record in sim.control.records(company_id, "invoices")]
    assert len(truth) == 50
    sizes, seen, href = [], [], f"/companies/{company_id}/data/invoices?page=1&pageSize=20"
    while href:
        body = client.get(href).json()
        sizes.append(len(body["results"]))
        seen += [record["id"] for record in body["results"]]
        assert body["totalResults"] == 50
        assert body["pageSize"] == 20
        assert body["_links"]["self"]["href"] == f"/companies/{company_id}/data/invoices"
        assert body["_links"]["current"]["href"].startswith(f"/companies/{company_id}/data/invoices?page=")
        href = body["_links"].get("next", {}).get("href")
    assert sizes == [20, 20, 10]
    assert seen == truth


def test_previous_link_and_page_numbers(client, company_id):
    body = client.get(f"/companies/{company_id}/data/invoices", params={"page": 2, "pageSize": 20}).json()
    assert body["pageNumber"] == 2
    assert "page=1" in body["_links"]["previous"]["href"]
    assert "page=3" in body["_links"]["next"]["href"]
    first = client.get(f"/companies/{company_id}/data/invoices", params={"pageSize": 20}).json()
    assert "previous" not in first["_links"]


def test_page_past_the_end_is_empty_without_next(client, company_id):
    body = client.get(f"/companies/{company_id}/data/invoices", params={"page": 4, "pageSize": 20}).json()
    assert body["results"] == []
    assert body["totalResults"] == 50
    assert "next" not in body["_links"]


def test_exact_multiple_has_no_next_on_last_page(client, company_id):
    body = client.get(f"/companies/{company_id}/data/invoices", params={"page": 2, "pageSize": 25}).json()
    assert len(body["results"]) == 25
    assert "next" not in body["_links"]


def test_default_page_size_is_100(client, company_id):
    body = client.get(f"/companies/{company_id}/data/invoices").json()
    assert body["pageSize"] == 100
    assert body["pageNumber"] == 1
    assert len(body["results"]) == 50


def test_links_carry_query_and_order(client, company_id):
    params = {"pageSize": 5, "query": "totalAmount>100", "orderBy": "-totalAmount"}
    body = client.get(f"/companies/{company_id}/data/invoices", params=params).json()
    follow = client.get(body["_links"]["next"]["href"]).json()
    amounts = [r["totalAmount"] for r in body["results"] + follow["results"]]
    assert amounts == sorted(amounts, reverse=True)
    assert follow["totalResults"] == body["totalResults"]


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"pageSize": 5000}, 200),
        ({"pageSize": 5001}, 400),
        ({"pageSize": 0}, 400),
        ({"page": 0}, 400),
        ({"page": "x"}, 400),
    ],
)
def test_paging_limits(client, company_id, params, status):
    response = client.get(f"/companies/{company_id}/data/invoices", params=params)
    assert response.status_code == status
    if status == 400:
        assert response.json()["statusCode"] == 400


def test_total_results_counts_after_filter(sim, client, company_id):
    truth = sim.control.records(company_id, "invoices")
    expected = sum(1 for r in truth if r["currency"] == "GBP")
    body = client.get(
        f"/companies/{company_id}/data/invoices", params={"query": "currency=GBP", "pageSize": 3}
    ).json()
    assert body["totalResults"] == expected
    assert 0 < expected < 50


def test_companies_and_connections_are_paged(sim, client, company_id):
    companies = client.get("/companies", params={"pageSize": 2}).json()
    assert companies["totalResults"] == 5
    assert len(companies["results"]) == 2
    connections = client.get(f"/companies/{company_id}/connections").json()
    assert {c["sourceType"] for c in connections["results"]} == {"Accounting", "Banking", "Commerce"}
    named = client.get("/companies", params={"query": "name~granite"}).json()
    assert [c["name"] for c in named["results"]] == ["Granite Builders"]
