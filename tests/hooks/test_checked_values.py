"""The hook takes checked values as they are: a ``CompanyId`` (and its kin) is not parsed again, a ``DataType``
entry is not looked up again (not per call, never per page), while a plain string is still checked in full,
once per call, before any request."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import httpx
import pytest

from airflow_provider_codat import datatypes, values
from airflow_provider_codat.datatypes import get_data_type
from airflow_provider_codat.hooks.codat import CodatValidationError
from airflow_provider_codat.validation import require_uuid
from airflow_provider_codat.values import CompanyId, ConnectionId, DatasetId
from tests.hooks.conftest import COMPANY, CONNECTION, DATASET, page

INVOICES = f"/companies/{COMPANY}/data/invoices"
BANK_ACCOUNTS = f"/companies/{COMPANY}/connections/{CONNECTION}/data/bankAccounts"


@pytest.fixture
def uuid_parses(monkeypatch) -> list:
    """The strings parsed into a UUID by :mod:`airflow_provider_codat.values` (each id check makes one)."""
    made: list = []

    class CountingUUID(uuid.UUID):
        def __init__(self, hex=None, *args, **kwargs):
            made.append(hex)
            super().__init__(hex, *args, **kwargs)

    monkeypatch.setattr(values, "uuid", SimpleNamespace(UUID=CountingUUID))
    return made


class CountingCatalogue(dict):
    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.lookups: list = []

    def __getitem__(self, key):
        self.lookups.append(key)
        return super().__getitem__(key)


@pytest.fixture
def catalogue(monkeypatch) -> CountingCatalogue:
    """The data-type catalogue, counting every lookup by key."""
    counting = CountingCatalogue(datatypes.CATALOGUE)
    monkeypatch.setattr(datatypes, "CATALOGUE", counting)
    return counting


def three_pages(api, path):
    recs = [[{"id": str(i)}] for i in range(3)]
    return api.get(path).mock(
        side_effect=[
            httpx.Response(200, json=page(recs[0], 1, 1, 3, next_page=2, path=path)),
            httpx.Response(200, json=page(recs[1], 2, 1, 3, next_page=3, path=path)),
            httpx.Response(200, json=page(recs[2], 3, 1, 3, path=path)),
        ]
    )


def answer_every_read(api):
    api.get(f"/companies/{COMPANY}").respond(200, json={"id": COMPANY})
    api.get(f"/companies/{COMPANY}/dataStatus").respond(200, json={})
    api.get(f"/companies/{COMPANY}/data/history/{DATASET}").respond(200, json={"id": DATASET})
    api.get(f"/companies/{COMPANY}/data/financials/balanceSheet").respond(200, json={"reports": []})
    api.post(f"/companies/{COMPANY}/data/queue/invoices").respond(200, json={"id": DATASET})
    api.post(f"/companies/{COMPANY}/data/all").respond(204)
    for path in (f"/companies/{COMPANY}/connections", f"/companies/{COMPANY}/data/history", BANK_ACCOUNTS):
        api.get(path).respond(200, json=page([], 1, 1000, 0, path=path))


# Each call, and how many ids it puts into a path (or the queue's connectionId).
CALLS = {
    "portal_url": (lambda h, c, n, d: h.portal_url(c), 1),
    "get_company": (lambda h, c, n, d: h.get_company(c), 1),
    "get_data_status": (lambda h, c, n, d: h.get_data_status(c), 1),
    "refresh_all_data": (lambda h, c, n, d: h.refresh_all_data(c), 1),
    "queue_data_type": (lambda h, c, n, d: h.queue_data_type(c, "invoices", connection_id=n), 2),
    "get_pull_operation": (lambda h, c, n, d: h.get_pull_operation(c, d), 2),
    "list_connections": (lambda h, c, n, d: list(h.list_connections(c)), 1),
    "iter_pull_operations": (lambda h, c, n, d: list(h.iter_pull_operations(c)), 1),
    "iter_pages": (lambda h, c, n, d: list(h.iter_pages(c, "bankAccounts", connection_id=n)), 2),
    "get_page": (lambda h, c, n, d: h.get_page(c, "bankAccounts", connection_id=n), 2),
    "get_report": (lambda h, c, n, d: h.get_report(c, "balanceSheet"), 1),
}


@pytest.mark.parametrize("call", sorted(CALLS))
def test_checked_ids_are_not_parsed_again(hook, api, uuid_parses, call):
    answer_every_read(api)
    ids = CompanyId.parse(COMPANY), ConnectionId.parse(CONNECTION), DatasetId.parse(DATASET)
    uuid_parses.clear()
    CALLS[call][0](hook, *ids)
    assert uuid_parses == []


@pytest.mark.parametrize("call", sorted(CALLS))
def test_plain_string_ids_are_parsed_once_per_call(hook, api, uuid_parses, call):
    answer_every_read(api)
    function, ids_in_path = CALLS[call]
    result = function(hook, COMPANY.upper(), CONNECTION, DATASET)
    assert len(uuid_parses) == ids_in_path
    if call == "portal_url":
        assert api.calls.call_count == 0 and result.endswith(f"/companies/{COMPANY}/summary")
    else:  # one request, with the canonical (lower-case) id in its path
        assert api.calls.call_count == 1 and COMPANY in api.calls.last.request.url.path


def test_a_checked_company_id_goes_through_as_it_is(hook, api, monkeypatch):
    answer_every_read(api)
    company = CompanyId.parse(COMPANY)
    seen = []
    real = CompanyId.parse.__func__

    def spy(cls, value, what=None):
        result = real(cls, value, what)
        seen.append((value, result))
        return result

    monkeypatch.setattr(CompanyId, "parse", classmethod(spy))
    hook.get_company(company)
    assert len(seen) == 1 and seen[0][1] is company


@pytest.mark.parametrize("bad", ["not-a-uuid", f"{COMPANY}/../x", f"{COMPANY}?page=2", None])
def test_a_bad_company_id_string_is_still_refused_before_any_request(hook, api, bad):
    route = api.route().respond(500)
    with pytest.raises(CodatValidationError) as info:
        hook.get_company(bad)
    with pytest.raises(CodatValidationError) as old:
        require_uuid(bad, "company_id")
    assert str(info.value) == str(old.value)  # the same message as before
    for call in (
        lambda: hook.iter_pages(bad, "invoices"),
        lambda: hook.get_page(bad, get_data_type("invoices")),
        lambda: hook.queue_data_type(bad, "invoices"),
        lambda: hook.get_pull_operation(bad, DatasetId.parse(DATASET)),
    ):
        with pytest.raises(CodatValidationError, match="company_id must be a UUID"):
            call()
    assert route.call_count == 0


def test_a_bad_connection_or_dataset_id_string_is_refused_too(hook, api):
    route = api.route().respond(500)
    company = CompanyId.parse(COMPANY)
    with pytest.raises(CodatValidationError, match="connection_id must be a UUID"):
        hook.iter_pages(company, "bankAccounts", connection_id=f"{CONNECTION}/x")
    with pytest.raises(CodatValidationError, match="connection_id must be a UUID"):
        hook.queue_data_type(company, "invoices", connection_id="x")
    with pytest.raises(CodatValidationError, match="dataset_id must be a UUID"):
        hook.get_pull_operation(company, "../dataStatus")
    assert route.call_count == 0


def test_a_data_type_entry_is_not_looked_up_per_page(hook, api, catalogue):
    route = three_pages(api, INVOICES)
    entry = get_data_type("invoices")
    catalogue.lookups.clear()
    pages = list(hook.iter_pages(CompanyId.parse(COMPANY), entry, page_size=1))
    assert len(pages) == 3 and route.call_count == 3
    assert catalogue.lookups == []


def test_a_data_type_key_is_looked_up_once_for_every_page(hook, api, catalogue):
    three_pages(api, INVOICES)
    assert len(list(hook.iter_pages(COMPANY, "invoices", page_size=1))) == 3
    assert catalogue.lookups == ["invoices"]


def test_the_page_reader_takes_the_entry_as_it_is(hook, api, catalogue, uuid_parses):
    """A keyset read calls ``get_page`` once per page: with checked values, none of them checks again."""
    route = three_pages(api, INVOICES)
    company, entry = CompanyId.parse(COMPANY), get_data_type("invoices")
    catalogue.lookups.clear()
    uuid_parses.clear()
    pages = [hook.get_page(company, entry, page=n, page_size=1, order_by="modifiedDate") for n in (1, 2, 3)]
    assert [p.number for p in pages] == [1, 2, 3] and route.call_count == 3
    assert catalogue.lookups == [] and uuid_parses == []


def test_reports_and_queues_take_the_entry_as_it_is(hook, api, catalogue):
    answer_every_read(api)
    company, report, invoices = (
        CompanyId.parse(COMPANY),
        get_data_type("balanceSheet"),
        get_data_type("invoices"),
    )
    catalogue.lookups.clear()
    assert hook.get_report(company, report) == {"reports": []}
    assert hook.queue_data_type(company, invoices) == {"id": DATASET}
    assert catalogue.lookups == []


def test_no_value_type_leaks_into_what_the_hook_returns_or_sends(hook, api):
    answer_every_read(api)
    company, connection = CompanyId.parse(COMPANY), ConnectionId.parse(CONNECTION)
    assert type(hook.portal_url(company)) is str
    hook.queue_data_type(company, "invoices", connection_id=connection)
    assert api.calls.last.request.url.params["connectionId"] == CONNECTION
    body = hook.get_company(company)
    assert type(body["id"]) is str
    read = hook.iter_pages(company, "bankAccounts", connection_id=connection)
    assert type(read.path) is str and read.path == BANK_ACCOUNTS


def test_get_page_refuses_what_iter_pages_refuses(hook, api):
    route = api.route().respond(500)
    with pytest.raises(CodatValidationError, match="page must be a whole number"):
        hook.get_page(COMPANY, "invoices", page=0)
    with pytest.raises(CodatValidationError, match="page_size"):
        hook.get_page(COMPANY, "invoices", page_size=0)
    with pytest.raises(TypeError, match="nonsense"):
        hook.get_page(COMPANY, "invoices", nonsense=1)
    assert route.call_count == 0
