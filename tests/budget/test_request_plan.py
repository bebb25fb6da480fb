"""The run's plan: the requests a company's sync and its reconciles are expected to make."""

from __future__ import annotations

from airflow_provider_codat.budget.request_plan import reconcile_requests, requests_per_company, run_plan
from airflow_provider_codat.budget.settings import BudgetSettings
from airflow_provider_codat.budget.stores import Quota


def test_a_reconcile_counts_its_listings_and_one_full_read_page_per_type():
    assert reconcile_requests([]) == 0
    # One listing of connections for the company, one page for the connection's scope.
    assert reconcile_requests(["banking-transactions"]) == 2
    # Bank transactions list the connection's bank accounts too.
    assert reconcile_requests(["bankTransactions"]) == 3
    assert reconcile_requests(["bankTransactions", "banking-transactions", "commerce-orders"]) == 1 + 3 + 1


def test_the_company_plan_adds_the_reconciles_to_the_sync():
    types = ["invoices", "bankTransactions", "banking-transactions"]
    plain = requests_per_company(types, "all")
    assert plain == 1 + 4 + (1 + 2 + 2)
    assert requests_per_company(types, "all", ["bankTransactions", "banking-transactions"]) == plain + 4


def test_run_plan_counts_the_reconciles_of_every_company_against_the_quota():
    settings = BudgetSettings(requests_per_minute=900, quota_reserve=0)
    quota = Quota(limit=6000, remaining=80, resets_at=None, observed_at=0.0)
    types = ["banking-transactions"]
    without = run_plan(10, types, settings, quota, refresh="all")
    plan = run_plan(10, types, settings, quota, refresh="all", reconcile=types)
    assert without["requests"] == 10 * (1 + 4 + 2)
    assert plan["requests"] == without["requests"] + 10 * 2 and plan["reconciled_types"] == 1
    assert without["fits_in_quota"] is True and plan["fits_in_quota"] is False
