"""Paging: follow the envelope page by page, stop on the last or an empty page, refuse a loop that stalls."""

from __future__ import annotations

import httpx
import pytest

from airflow_provider_codat.hooks.codat import DEFAULT_PAGE_SIZE, CodatPagingError
from airflow_provider_codat.hooks.paging import iter_envelopes
from tests.hooks.conftest import COMPANY, CONNECTION, page

INVOICES = f"/companies/{COMPANY}/data/invoices"


def recs(*ids):
    return [{"id": str(i)} for i in ids]


def test_iter_pages_follows_next_links_page_by_page(hook, api):
    route = api.get(INVOICES).mock(
        side_effect=[
            httpx.Response(200, json=page(recs(1, 2), 1, 2, 5, next_page=2, path=INVOICES)),
            httpx.Response(200, json=page(recs(3, 4), 2, 2, 5, next_page=3, path=INVOICES)),
            httpx.Response(200, json=page(recs(5), 3, 2, 5, path=INVOICES)),
        ]
    )
    pages = hook.iter_pages(
        COMPANY, "invoices", page_size=2, query="modifiedDate>=2024-01-01", order_by="modifiedDate"
    )
    assert route.call_count == 0  # lazy
    first = next(pages)
    assert first == recs(1, 2) and route.call_count == 1  # one page at a time
    assert list(pages) == [recs(3, 4), recs(5)]
    sent = [dict(c.request.url.params) for c in route.calls]
    assert [p["page"] for p in sent] == ["1", "2", "3"]
    assert all(p["pageSize"] == "2" and p["orderBy"] == "modifiedDate" for p in sent)
    assert sent[0]["query"] == "modifiedDate>=2024-01-01"


def test_next_link_page_number_is_used(hook, api):
    route = api.get(INVOICES).mock(
        side_effect=[
            httpx.Response(200, json=page(recs(1), 1, 1, 9, next_page=2, path=INVOICES)),
            httpx.Response(200, json={**page(recs(2), 2, 1, 9, path=INVOICES)}),
        ]
    )
    pages = hook.iter_pages(COMPANY, "invoices", page_size=1)
    assert next(pages) == recs(1)
    # No next link on page 2, yet totalResults promised 9: an early end is an error, never a silent one.
    with pytest.raises(CodatPagingError, match="reported 9 records"):
        next(pages)
    assert route.call_count == 2


def test_empty_page_stops(hook, api):
    api.get(INVOICES).mock(
        side_effect=[httpx.Response(200, json=page([], 1, 100, 0, next_page=2, path=INVOICES))]
    )
    assert list(hook.iter_pages(COMPANY, "invoices")) == []


def test_without_links_total_results_decides(hook, api):
    def body(ids, n):
        return {"results": recs(*ids), "pageNumber": n, "pageSize": 2, "totalResults": 3}

    route = api.get(INVOICES).mock(
        side_effect=[httpx.Response(200, json=body([1, 2], 1)), httpx.Response(200, json=body([3], 2))]
    )
    assert list(hook.iter_pages(COMPANY, "invoices", page_size=2)) == [recs(1, 2), recs(3)]
    assert route.call_count == 2


def test_server_answering_the_same_page_is_refused(hook, api):
    same = page(recs(1, 2), 1, 2, 10, next_page=2, path=INVOICES)
    route = api.get(INVOICES).respond(200, json=same)
    pages = hook.iter_pages(COMPANY, "invoices", page_size=2)
    assert next(pages) == recs(1, 2)
    with pytest.raises(CodatPagingError, match="asked Codat for page 2|got page 1"):
        next(pages)
    assert route.call_count == 2


def test_next_link_that_does_not_advance_is_refused(hook, api):
    api.get(INVOICES).respond(200, json=page(recs(1), 1, 1, 10, next_page=1, path=INVOICES))
    with pytest.raises(CodatPagingError, match="links to page 1 as the next one instead of page 2"):
        list(hook.iter_pages(COMPANY, "invoices", page_size=1))


def test_next_link_that_skips_a_page_is_refused(hook, api):
    api.get(INVOICES).respond(200, json=page(recs(1), 1, 1, 10, next_page=3, path=INVOICES))
    with pytest.raises(CodatPagingError, match="links to page 3 as the next one instead of page 2"):
        list(hook.iter_pages(COMPANY, "invoices", page_size=1))


def test_pages_that_cycle_are_refused(hook, api):
    api.get(INVOICES).mock(
        side_effect=[
            httpx.Response(200, json=page(recs(1), 1, 1, 10, next_page=2, path=INVOICES)),
            httpx.Response(200, json=page(recs(2), 2, 1, 10, next_page=3, path=INVOICES)),
            httpx.Response(200, json=page(recs(1), 3, 1, 10, next_page=4, path=INVOICES)),
        ]
    )
    with pytest.raises(CodatPagingError, match="pages 1 and 3"):
        list(hook.iter_pages(COMPANY, "invoices", page_size=1))


@pytest.mark.parametrize("body", [{}, {"results": None}, {"pageNumber": 1, "totalResults": 0}, []])
def test_a_body_without_a_results_list_is_refused(hook, api, body):
    api.get(INVOICES).respond(200, json=body)
    with pytest.raises(CodatPagingError, match="without a results list"):
        list(hook.iter_pages(COMPANY, "invoices"))


def test_a_short_page_that_links_to_another_is_refused(hook, api):
    api.get(INVOICES).respond(200, json=page(recs(1), 1, 5, 10, next_page=2, path=INVOICES))
    with pytest.raises(CodatPagingError, match="fewer than the page size"):
        list(hook.iter_pages(COMPANY, "invoices", page_size=5))


def test_same_records_without_page_numbers_are_refused(hook, api):
    body = {"results": recs(1, 2), "totalResults": 10}
    route = api.get(INVOICES).respond(200, json=body)
    with pytest.raises(CodatPagingError, match="same 2 records"):
        list(hook.iter_pages(COMPANY, "invoices", page_size=2))
    assert route.call_count == 2


def test_results_that_are_not_a_list_are_refused():
    with pytest.raises(CodatPagingError, match="without a results list"):
        list(iter_envelopes(lambda p: {"results": "nope"}, "/x", {}, 10))


def test_list_companies_yields_records_across_pages(hook, api):
    route = api.get("/companies").mock(
        side_effect=[
            httpx.Response(200, json=page([{"id": "a"}, {"id": "b"}], 1, 2, 3, next_page=2)),
            httpx.Response(200, json=page([{"id": "c"}], 2, 2, 3)),
        ]
    )
    companies = hook.list_companies(query="name~Acme", tags="region=uk")
    assert [c["id"] for c in companies] == ["a", "b", "c"]
    params = route.calls[0].request.url.params
    assert params["query"] == "name~Acme" and params["tags"] == "region=uk"
    assert params["pageSize"] == str(DEFAULT_PAGE_SIZE)


def test_default_page_size_is_a_thousand():
    assert DEFAULT_PAGE_SIZE == 1000


def test_connections_and_history_are_paged(hook, api):
    api.get(f"/companies/{COMPANY}/connections").respond(200, json=page([{"id": CONNECTION}], 1, 1000, 1))
    history = api.get(f"/companies/{COMPANY}/data/history").respond(
        200, json=page([{"id": "d1"}], 1, 1000, 1)
    )
    assert [c["id"] for c in hook.list_connections(COMPANY)] == [CONNECTION]
    assert [p["id"] for p in hook.iter_pull_operations(COMPANY, query="dataType=invoices")] == ["d1"]
    assert history.calls.last.request.url.params["orderBy"] == "-requested"
    assert history.calls.last.request.url.params["query"] == "dataType=invoices"


def test_connection_and_bank_account_scoped_paths(hook, api):
    accounts = api.get(f"/companies/{COMPANY}/connections/{CONNECTION}/data/bankAccounts").respond(
        200, json=page([{"id": "acc-1"}], 1, 1000, 1)
    )
    tx_path = f"/companies/{COMPANY}/connections/{CONNECTION}/data/bankAccounts/acc-1/bankTransactions"
    tx = api.get(tx_path).respond(200, json=page([{"id": "t1"}], 1, 1000, 1))
    assert list(hook.iter_pages(COMPANY, "bankAccounts", connection_id=CONNECTION)) == [[{"id": "acc-1"}]]
    pages = hook.iter_pages(COMPANY, "bankTransactions", connection_id=CONNECTION, account_id="acc-1")
    assert list(pages) == [[{"id": "t1"}]]
    assert accounts.call_count == tx.call_count == 1


def test_chart_of_accounts_reads_from_accounts(hook, api):
    route = api.get(f"/companies/{COMPANY}/data/accounts").respond(200, json=page([{"id": "1"}], 1, 1000, 1))
    assert list(hook.iter_pages(COMPANY, "chartOfAccounts")) == [[{"id": "1"}]]
    assert route.call_count == 1
