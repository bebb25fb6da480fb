"""Single-object data types: company info, commerce company info and the three financial statements.

Statements are built on request from ``periodLength``/``periodsToCompare``/``startMonth`` with amounts drawn
from a random source seeded by the company and the statement's sync, so they stay stable between syncs.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from airflow_provider_codat.simulator.clock import fmt_local


def _line(rng: random.Random, name: str, parts: tuple[str, ...]) -> dict:
    items = [{"name": part, "value": round(rng.uniform(100, 20000), 2), "items": []} for part in parts]
    return {"name": name, "value": round(sum(item["value"] for item in items), 2), "items": items}


def _month_start(year: int, month: int) -> datetime:
    while month < 1:
        month += 12
        year -= 1
    return datetime(year, month, 1, tzinfo=UTC)


def _periods(now: datetime, period_length: int, periods: int, start_month: datetime | None):
    """Yield (from, to) for each period, most recent first, ending at the current month."""
    end = start_month or _month_start(now.year, now.month)
    for index in range(periods):
        stop = _month_start(end.year, end.month + 1 - index * period_length)
        begin = _month_start(stop.year, stop.month - period_length)
        yield begin, stop


def financial_statement(
    key: str,
    rng: random.Random,
    now: datetime,
    period_length: int,
    periods: int,
    start_month: datetime | None,
) -> dict:
    """Build ``balanceSheet``, ``profitAndLoss`` or ``cashFlowStatement``.

    :param key: the data type key.
    :param rng: random source for the amounts.
    :param now: the simulated time (the latest period ends in its month).
    :param period_length: months per period.
    :param periods: how many periods to compare.
    :param start_month: the month the latest period ends in, when given.
    """
    reports = []
    for begin, stop in _periods(now, period_length, periods, start_month):
        stop -= timedelta(days=1)  # periods end on their last day, not the next month's first
        if key == "balanceSheet":
            assets = _line(rng, "Assets", ("Fixed assets", "Current assets"))
            liabilities = _line(rng, "Liabilities", ("Current liabilities",))
            net = round(assets["value"] - liabilities["value"], 2)
            equity = {"name": "Equity", "value": net, "items": []}
            reports.append(
                {
                    "date": fmt_local(stop),
                    "assets": assets,
                    "liabilities": liabilities,
                    "netAssets": net,
                    "equity": equity,
                }
            )
        elif key == "profitAndLoss":
            income = _line(rng, "Income", ("Sales", "Services"))
            cost = _line(rng, "Cost of sales", ("Materials",))
            expenses = _line(rng, "Expenses", ("Rent", "Wages"))
            gross = round(income["value"] - cost["value"], 2)
            operating = round(gross - expenses["value"], 2)
            reports.append(
                {
                    "fromDate": fmt_local(begin),
                    "toDate": fmt_local(stop),
                    "income": income,
                    "costOfSales": cost,
                    "grossProfit": gross,
                    "expenses": expenses,
                    "netOperatingProfit": operating,
                    "netOtherIncome": 0,
                    "netProfit": operating,
                }
            )
        else:
            reports.append(
                {
                    "fromDate": fmt_local(begin),
                    "toDate": fmt_local(stop),
                    "cashReceipts": _line(rng, "Cash receipts", ("Customers",)),
                    "cashPayments": _line(rng, "Cash payments", ("Suppliers", "Payroll")),
                }
            )
    body: dict = {"reports": reports, "currency": "GBP"}
    if key != "balanceSheet":
        body["reportBasis"] = "Accrual"
    if key == "cashFlowStatement":
        body["reportInput"] = "Indirect"
    if reports:
        body["mostRecentAvailableMonth"] = fmt_local(_month_start(now.year, now.month))
        body["earliestAvailableMonth"] = fmt_local(_month_start(now.year, now.month - 23))
    return body


def company_info(company: dict) -> dict:
    """The accounting ``company`` data type (``/data/info``).

    :param company: the company body.
    """
    return {
        "companyName": company["name"],
        "accountingPlatformRef": company["id"],
        "companyLegalName": f"{company['name']} Limited",
        "addresses": [],
        "phoneNumbers": [],
        "webLinks": [],
        "registrationNumber": "01234567",
        "taxNumber": "GB123456789",
        "financialYearStartDate": "2026-04-01T00:00:00",
        "baseCurrency": "GBP",
        "sourceUrls": {},
        "createdDate": company["created"],
    }


def commerce_info(company: dict) -> dict:
    """The commerce ``commerce-companyInfo`` data type (``/data/commerce-info``).

    :param company: the company body.
    """
    return {
        "companyName": company["name"],
        "commercePlatformRef": company["id"],
        "companyLegalName": f"{company['name']} Limited",
        "addresses": [],
        "phoneNumbers": [],
        "webLinks": [],
        "registrationNumber": "01234567",
        "baseCurrency": "GBP",
        "accountBalances": [],
        "sourceUrls": {},
        "createdDate": company["created"],
    }
