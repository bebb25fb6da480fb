"""Plan before spending: the requests a run expects to make, against the budget left today and the rate.

An estimate, on the low side of what a run costs: per company, the refresh (one ``data/queue`` per type, or one
``data/all``), the wait (a first look, a few polls, the look before and after the extract), and per data type
one page, plus one listing of connections or bank accounts for the types scoped to them. Types with many
changed records cost one more request per page of ``page_size`` records.

A company's reconciles (``extract/reconcile.py``) read every scope whole, in Codat's largest pages: one listing
of connections for all of them, one listing of bank accounts per connection for bank transactions, and one page
of up to 5,000 records per scope (counted as one scope per type here: a company with more connections or bank
accounts, or with more records, costs more).
"""

from __future__ import annotations

import math
from typing import Any

from airflow_provider_codat.budget.quota import Quota
from airflow_provider_codat.budget.settings import BudgetSettings
from airflow_provider_codat.datatypes import Kind, Scope, get_data_type

WAIT_REQUESTS = 4  # the wait's first look and polls, and the dataStatus read before and after the extract


def requests_per_company(
    data_types: list[str], refresh: str = "queue", reconcile: list[str] | tuple[str, ...] = ()
) -> int:
    """The requests one company's sync expects to make for ``data_types``.

    :param refresh: ``"queue"``, ``"all"`` or ``"none"``, as the company sync operator takes it.
    :param reconcile: the types reconciled after their extract (see :func:`reconcile_requests`).
    """
    entries = [get_data_type(key) for key in data_types]
    refreshing = {"queue": len(entries), "all": 1}.get(refresh, 0)
    reads = sum(1 if entry.scope is Scope.COMPANY else 2 for entry in entries)
    return refreshing + (WAIT_REQUESTS if refreshing else 1) + reads + reconcile_requests(reconcile)


def reconcile_requests(reconcile: list[str] | tuple[str, ...]) -> int:
    """The requests the reconciles of ``reconcile`` expect to make for one company: one listing of connections,
    then per type one full-read page of one scope, plus the listing of bank accounts for bank transactions.
    A type read whole every run costs nothing: its run's own read is compared."""
    entries = [entry for entry in map(get_data_type, reconcile) if entry.kind is Kind.INCREMENTAL]
    if not entries:
        return 0
    return 1 + len(entries) + sum(1 for entry in entries if entry.scope is Scope.BANK_ACCOUNT)


def run_plan(
    companies: int,
    data_types: list[str],
    settings: BudgetSettings,
    quota: Quota | None,
    *,
    refresh: str = "queue",
    reconcile: list[str] | tuple[str, ...] = (),
) -> dict[str, Any]:
    """What a run of ``companies`` companies expects to spend, and whether today's budget covers it.

    :param reconcile: the types the run reconciles after their extract.

    :returns: plain JSON: ``companies``, ``requests_per_company``, ``requests``, ``requests_per_minute``,
        ``minutes_at_rate``, ``quota_remaining`` and ``quota_resets_at`` (``None`` when no answer from Codat
        has told yet), ``quota_reserve`` and ``fits_in_quota`` (``None`` when unknown).
    """
    per_company = requests_per_company(data_types, refresh, reconcile)
    requests = companies * per_company
    reserve = settings.reserve_for(quota.limit if quota else None)
    remaining = quota.remaining if quota else None
    return {
        "companies": companies,
        "data_types": len(data_types),
        "reconciled_types": len(reconcile),
        "requests_per_company": per_company,
        "requests": requests,
        "requests_per_minute": settings.requests_per_minute,
        "minutes_at_rate": round(requests / settings.requests_per_minute, 1),
        "quota_remaining": remaining,
        "quota_resets_at": quota.resets_at if quota else None,
        "quota_reserve": reserve,
        "fits_in_quota": None if remaining is None else requests <= remaining - reserve,
    }


def describe(plan: dict[str, Any]) -> str:
    """One line for the log: the run's requests, the time the rate implies and the quota left."""
    hours, minutes = divmod(math.ceil(plan["minutes_at_rate"]), 60)
    duration = f"{hours} h {minutes} min" if hours else f"{minutes} min"
    line = (
        f"This run expects about {plan['requests']:,} Codat requests ({plan['companies']:,} companies x "
        f"{plan['requests_per_company']} each): at least {duration} at {plan['requests_per_minute']:,} a minute"
    )
    if plan["quota_remaining"] is None:
        return line + "; today's quota is not known yet (no answer from Codat seen)."
    verdict = "fits" if plan["fits_in_quota"] else "does NOT fit: the run will pause until the quota resets"
    return (
        f"{line}; {plan['quota_remaining']:,} left of today's quota (reserve {plan['quota_reserve']:,}): it "
        f"{verdict}."
    )
