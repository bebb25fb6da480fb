"""Every catalogue data type is served at its catalogue path; scope and parameter errors."""

from __future__ import annotations

import calendar
from datetime import UTC, date, timedelta

import pytest

from airflow_provider_codat.datatypes import CATALOGUE, Kind, Scope
from tests.moments import MOMENTS, month_index, month_of

STATEMENTS = ("balanceSheet", "profitAndLoss", "cashFlowStatement")


def _path(sim, company_id, entry, account=None):
    connection = sim.control.connection_id(company_id, entry.source_type)
    if entry.scope is Scope.BANK_ACCOUNT:
        account = account or sim.control.bank_account_ids(company_id)[0]
    return entry.read_path(company_id, connection, account)


@pytest.mark.parametrize("key", sorted(CATALOGUE))
def test_every_catalogue_type_is_served(sim, client, company_id, key):
    entry = CATALOGUE[key]
    if not entry.fetch_on_first_link:
        client.post(f"/companies/{company_id}/data/queue/{key}")
        sim.control.complete_running_syncs()
    params = {"periodLength": 3, "periodsToCompare": 2} if entry.report else {}
    response = client.get(_path(sim, company_id, entry), params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    if entry.kind is Kind.SNAPSHOT:
        assert "results" not in body
        if entry.report:
            assert len(body["reports"]) == 2
        return
    records = body["results"]
    assert body["totalResults"] == len(records) > 0
    assert len({r["id"] for r in records}) == len(records)
    assert all(("modifiedDate" in r) == entry.incremental for r in records)
    assert all(("metadata" in r) == entry.has_deleted_flag for r in records)


def test_seeded_records_look_like_codat(sim, company_id):
    records = sim.control.records(company_id, "invoices")
    first = records[0]
    assert first["modifiedDate"].endswith("Z") and len(first["modifiedDate"].split(".")[1]) == 8
    assert first["metadata"] == {"isDeleted": False}
    assert {
        "invoiceNumber",
        "customerRef",
        "issueDate",
        "totalAmount",
        "currency",
        "sourceModifiedDate",
    } <= set(first)
    assert any(r["sourceModifiedDate"] and not r["sourceModifiedDate"].endswith("Z") for r in records)


def test_bank_transactions_live_under_each_bank_account(sim, client, company_id):
    accounts = sim.control.bank_account_ids(company_id)
    assert len(accounts) >= 2
    entry = CATALOGUE["bankTransactions"]
    first = client.get(_path(sim, company_id, entry, accounts[0])).json()["results"]
    second = client.get(_path(sim, company_id, entry, accounts[1])).json()["results"]
    assert {r["id"] for r in first}.isdisjoint({r["id"] for r in second})
    missing = client.get(_path(sim, company_id, entry, "00000000-0000-0000-0000-000000000000"))
    assert missing.status_code == 404


def test_financial_statements_need_their_parameters(client, company_id):
    url = f"/companies/{company_id}/data/financials/profitAndLoss"
    assert client.get(url).status_code == 400
    assert client.get(url, params={"periodLength": 1}).status_code == 400
    body = client.get(
        url, params={"periodLength": 1, "periodsToCompare": 3, "startMonth": "2026-06-01"}
    ).json()
    assert [r["fromDate"][:7] for r in body["reports"]] == ["2026-06", "2026-05", "2026-04"]
    assert body["reportBasis"] == "Accrual"


def test_paths_that_differ_from_the_key(sim, client, company_id):
    assert client.get(f"/companies/{company_id}/data/accounts").json()["results"][0]["fullyQualifiedName"]
    info = client.get(f"/companies/{company_id}/data/info").json()
    assert info["companyName"] == sim.control.companies()[0]["name"]
    assert client.get(f"/companies/{company_id}/data/chartOfAccounts").status_code == 404


def test_scope_errors(sim, client, company_id):
    accounting = sim.control.connection_id(company_id)
    wrong_source = client.get(f"/companies/{company_id}/connections/{accounting}/data/banking-accounts")
    assert wrong_source.status_code == 404
    unknown = client.get(
        f"/companies/{company_id}/connections/00000000-0000-0000-0000-000000000000/data/bankAccounts"
    )
    assert unknown.status_code == 404
    no_company = client.get("/companies/00000000-0000-0000-0000-000000000000/data/invoices")
    assert no_company.status_code == 404 and no_company.json()["error"].startswith("Company")


def test_companies_have_linked_and_deauthorized_connections(sim, client):
    companies = client.get("/companies").json()["results"]
    statuses = {c["id"]: {d["status"] for d in c["dataConnections"]} for c in companies}
    assert set(sim.control.deauthorized_company_ids()) == {
        i for i, s in statuses.items() if "Deauthorized" in s
    }
    assert sim.control.deauthorized_company_ids()
    assert len(sim.control.linked_company_ids()) == 4
    one = client.get(f"/companies/{companies[0]['id']}").json()
    assert one == companies[0]


def _day(text: str) -> date:
    return date.fromisoformat(text[:10])


def _last_day(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


@pytest.mark.parametrize("clock_at", MOMENTS, indirect=True)
@pytest.mark.parametrize(("period_length", "periods"), [(1, 12), (3, 8), (12, 24)])
def test_statement_periods_on_every_date(client, company_id, clock_at, period_length, periods):
    now = month_index(clock_at)
    params = {"periodLength": period_length, "periodsToCompare": periods}
    base = f"/companies/{company_id}/data/financials"
    bodies = {key: client.get(f"{base}/{key}", params=params) for key in STATEMENTS}
    assert all(r.status_code == 200 for r in bodies.values()), {k: r.text for k, r in bodies.items()}
    profit = bodies["profitAndLoss"].json()["reports"]
    assert len(profit) == periods
    # The latest period ends on the last day of the current (UTC) month, whatever the local zone says.
    assert _day(profit[0]["toDate"]) == _last_day(*month_of(now))
    for index, report in enumerate(profit):
        begin, end = _day(report["fromDate"]), _day(report["toDate"])
        # Period i covers the period_length months ending i * period_length months back, across years.
        assert (end.year, end.month) == month_of(now - index * period_length)
        assert (begin.year, begin.month) == month_of(now - (index + 1) * period_length + 1)
        assert begin.day == 1 and end == _last_day(end.year, end.month)
        if index:  # contiguous: each period starts the day after the older one ends
            assert _day(profit[index - 1]["fromDate"]) - end == timedelta(days=1)
    for key in ("balanceSheet", "cashFlowStatement"):
        reports = bodies[key].json()["reports"]
        ends = [_day(r["date"] if key == "balanceSheet" else r["toDate"]) for r in reports]
        assert ends == [_day(r["toDate"]) for r in profit], key
    body = bodies["balanceSheet"].json()
    assert _day(body["mostRecentAvailableMonth"]) == _last_day(*month_of(now))
    assert _day(body["earliestAvailableMonth"]) == date(*month_of(now - 23), 1)


@pytest.mark.parametrize("clock_at", MOMENTS, indirect=True)
def test_financial_year_start_on_every_date(client, company_id, clock_at):
    info = client.get(f"/companies/{company_id}/data/info").json()
    today = clock_at.astimezone(UTC).date()
    expected = date(today.year if today.month >= 4 else today.year - 1, 4, 1)
    assert _day(info["financialYearStartDate"]) == expected


@pytest.mark.parametrize(
    ("start_month", "period_length", "expected"),
    [
        # December's next month is January of the next year; January's previous one December of the last.
        ("2026-12-01", 1, [("2026-12-01", "2026-12-31"), ("2026-11-01", "2026-11-30")]),
        ("2027-01-01", 1, [("2027-01-01", "2027-01-31"), ("2026-12-01", "2026-12-31")]),
        ("2027-02-15", 1, [("2027-02-01", "2027-02-28"), ("2027-01-01", "2027-01-31")]),
        ("2028-02-29T00:00:00Z", 1, [("2028-02-01", "2028-02-29"), ("2028-01-01", "2028-01-31")]),
        ("2027-01-01", 3, [("2026-11-01", "2027-01-31"), ("2026-08-01", "2026-10-31")]),
        ("2027-03-01", 12, [("2026-04-01", "2027-03-31"), ("2025-04-01", "2026-03-31")]),
    ],
)
def test_statement_periods_from_a_start_month(client, company_id, start_month, period_length, expected):
    url = f"/companies/{company_id}/data/financials/profitAndLoss"
    params = {"periodLength": period_length, "periodsToCompare": 2, "startMonth": start_month}
    reports = client.get(url, params=params).json()["reports"]
    assert [(r["fromDate"][:10], r["toDate"][:10]) for r in reports] == expected
