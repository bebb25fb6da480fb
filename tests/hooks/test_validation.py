"""Every bad id, data type or parameter is refused before any request (and before the connection is read)."""

from __future__ import annotations

import uuid

import pytest

from airflow_provider_codat.hooks.codat import CodatHook, CodatValidationError
from airflow_provider_codat.validation import require_segment, require_uuid
from tests.hooks.conftest import COMPANY, CONNECTION, DATASET

BAD_IDS = [
    "",
    "not-a-uuid",
    "../companies",
    f"{COMPANY}/../other",
    f"{COMPANY}/",
    f"{COMPANY}?page=2",
    f"{COMPANY}#frag",
    f"{COMPANY}%2F..",
    "%2e%2e%2f",
    "..%2F..%2Fprofile",
    f"{{{COMPANY}}}",
    f"urn:uuid:{COMPANY}",
    COMPANY.replace("-", ""),
    f" {COMPANY}",
    f"{COMPANY}\n",
    None,
    123,
]
BAD_TYPES = [
    "",
    "Invoices",
    "invoices/../companies",
    "../dataStatus",
    "invoices?x=1",
    "invoices%2F..",
    "info",
    None,
]


@pytest.fixture
def guard(api):
    """Fail if anything is sent; no connection is defined, so even reading it would fail differently."""
    route = api.route().respond(500)
    yield route
    assert route.call_count == 0


@pytest.fixture
def bare_hook(monkeypatch, guard):
    monkeypatch.delenv("AIRFLOW_CONN_CODAT_DEFAULT", raising=False)
    return CodatHook()


CALLS = {
    "get_company": lambda h, c: h.get_company(c),
    "get_data_status": lambda h, c: h.get_data_status(c),
    "refresh_all_data": lambda h, c: h.refresh_all_data(c),
    "queue_data_type": lambda h, c: h.queue_data_type(c, "invoices"),
    "get_pull_operation": lambda h, c: h.get_pull_operation(c, DATASET),
    "iter_pages": lambda h, c: h.iter_pages(c, "invoices"),
    "list_connections": lambda h, c: h.list_connections(c),
    "iter_pull_operations": lambda h, c: h.iter_pull_operations(c),
    "get_report": lambda h, c: h.get_report(c, "balanceSheet"),
    "portal_url": lambda h, c: h.portal_url(c),
}


@pytest.mark.parametrize("bad", BAD_IDS)
@pytest.mark.parametrize("call", sorted(CALLS))
def test_bad_company_ids_are_refused_before_any_request(bare_hook, call, bad):
    with pytest.raises(CodatValidationError, match="company_id"):
        CALLS[call](bare_hook, bad)


@pytest.mark.parametrize("bad", BAD_IDS)
def test_bad_dataset_and_connection_ids_are_refused(bare_hook, bad):
    with pytest.raises(CodatValidationError, match="dataset_id"):
        bare_hook.get_pull_operation(COMPANY, bad)
    if bad:
        with pytest.raises(CodatValidationError, match="connection_id"):
            bare_hook.queue_data_type(COMPANY, "invoices", connection_id=bad)
        with pytest.raises(CodatValidationError, match="connection_id"):
            bare_hook.iter_pages(COMPANY, "bankAccounts", connection_id=bad)


@pytest.mark.parametrize("bad", BAD_TYPES)
def test_unknown_data_types_are_refused(bare_hook, bad):
    for call in (
        lambda: bare_hook.queue_data_type(COMPANY, bad),
        lambda: bare_hook.iter_pages(COMPANY, bad),
        lambda: bare_hook.get_report(COMPANY, bad),
    ):
        with pytest.raises(CodatValidationError, match="Unknown Codat data type"):
            call()


@pytest.mark.parametrize(
    "bad_account", ["../x", "a/b", "a?b=1", "a#b", "a%2Fb", "..", ".hidden", "a b", "", "x" * 300, None]
)
def test_bad_bank_account_ids_are_refused(bare_hook, bad_account):
    with pytest.raises(CodatValidationError, match="account_id"):
        bare_hook.iter_pages(COMPANY, "bankTransactions", connection_id=CONNECTION, account_id=bad_account)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"page_size": 0}, "page_size"),
        ({"page_size": 5001}, "page_size"),
        ({"page_size": "100"}, "page_size"),
        ({"page_size": True}, "page_size"),
        ({"order_by": "modifiedDate&page=9"}, "order_by"),
        ({"order_by": "-"}, "order_by"),
        ({"order_by": "a b"}, "order_by"),
        ({"query": "x" * 2048}, "2048"),
        ({"query": "a=1\r\nX-Header: y"}, "control"),
        ({"query": 5}, "must be a string"),
        ({"connection_id": CONNECTION}, "read per company"),
    ],
)
def test_bad_paging_parameters_are_refused(bare_hook, kwargs, match):
    with pytest.raises(CodatValidationError, match=match):
        bare_hook.iter_pages(COMPANY, "invoices", **kwargs)


def test_scope_and_kind_mismatches_are_refused(bare_hook):
    with pytest.raises(CodatValidationError, match="pass connection_id"):
        bare_hook.iter_pages(COMPANY, "bankAccounts")
    with pytest.raises(CodatValidationError, match="pass account_id"):
        bare_hook.iter_pages(COMPANY, "bankTransactions", connection_id=CONNECTION)
    with pytest.raises(CodatValidationError, match="not read per bank account"):
        bare_hook.iter_pages(COMPANY, "bankAccounts", connection_id=CONNECTION, account_id="a1")
    with pytest.raises(CodatValidationError, match="get_report"):
        bare_hook.iter_pages(COMPANY, "balanceSheet")
    with pytest.raises(CodatValidationError, match="iter_pages"):
        bare_hook.get_report(COMPANY, "invoices")
    with pytest.raises(CodatValidationError, match="Unknown parameters"):
        bare_hook.get_report(COMPANY, "balanceSheet", path="../x")
    with pytest.raises(CodatValidationError, match="Unknown parameters"):
        bare_hook.get_report(COMPANY, "company", periodLength=1)
    with pytest.raises(CodatValidationError, match="periodLength"):
        bare_hook.get_report(COMPANY, "profitAndLoss", periodLength="1&x=2")
    with pytest.raises(CodatValidationError, match="list_companies|query"):
        bare_hook.list_companies(query="a=1\x00")


def test_require_uuid_accepts_canonical_forms_only():
    value = str(uuid.uuid4())
    assert require_uuid(value, "id") == value
    assert require_uuid(value.upper(), "id") == value
    assert require_uuid(uuid.UUID(value), "id") == value


def test_require_segment_accepts_platform_ids():
    for ok in ("35", "acc-1", "a_b.c", "8a7b9c0d-1e2f-4a5b-8c6d-7e8f9a0b1c2d"):
        assert require_segment(ok, "account_id") == ok
