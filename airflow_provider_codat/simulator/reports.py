"""Single-object data types: company info, commerce company info and the three financial statements.

Statements are built on request from ``periodLength``/``periodsToCompare``/``startMonth`` with amounts drawn
from a random source seeded by the company and the statement's sync, so they stay stable between syncs.
"""

from __future__ import annotations

import random
from datetime import datetime

import pendulum

from airflow_provider_codat.simulator.clock import fmt_local

# Codat keeps 24 months of history by default (``monthsToSync``): the earliest available month is 23 back.
AVAILABLE_MONTHS = 24
# The simulated companies' financial year starts on 1 April (the UK's common choice).
FINANCIAL_YEAR_START_MONTH = 4


def _line(rng: random.Random, name: str, parts: tuple[str, ...]) -> dict:
    items = [{"name": part, "value": round(rng.uniform(100, 20000), 2), "items": []} for part in parts]
    return {"name": name, "value": round(sum(item["value"] for item in items), 2), "items": items}


def month_start(moment: datetime) -> pendulum.DateTime:
    """Midnight UTC on the first day of the calendar month ``moment`` falls in (in its own zone).

    :param moment: a datetime; its year and month are read as written, so ``startMonth=2026-06-01+02:00``
        names June.
    """
    return pendulum.datetime(moment.year, moment.month, 1, tz="UTC")


def statement_periods(
    now: datetime, period_length: int, periods: int, start_month: datetime | None = None
) -> list[tuple[pendulum.DateTime, pendulum.DateTime]]:
    """(first day, last day) of each period, most recent first.

    The latest period ends on the last day of ``start_month``'s month, else of the current month; each period
    ends the day before the next one starts. Calendar months come from pendulum, so no month number is ever
    worked out by hand (December + 1 is January of the next year, 31 January + 1 month is 28 February).

    :param now: the simulated time.
    :param period_length: months per period.
    :param periods: how many periods.
    :param start_month: the month the latest period ends in, when given.
    """
    after = month_start(start_month or now).add(months=1)  # the first day after the latest period
    found = []
    for index in range(periods):
        stop = after.subtract(months=index * period_length)
        found.append((stop.subtract(months=period_length), stop.subtract(days=1)))
    return found


def available_months(now: datetime) -> tuple[pendulum.DateTime, pendulum.DateTime]:
    """(``earliestAvailableMonth``, ``mostRecentAvailableMonth``): the first day of the month 23 months back
    and the last day of the current month, as Codat's examples date them.

    :param now: the simulated time.
    """
    current = month_start(now)
    return current.subtract(months=AVAILABLE_MONTHS - 1), current.add(months=1).subtract(days=1)


def financial_year_start(now: datetime) -> pendulum.DateTime:
    """The start of the financial year ``now`` is in: the latest 1 April on or before ``now`` (UTC).

    :param now: the simulated time.
    """
    start = pendulum.datetime(now.year, FINANCIAL_YEAR_START_MONTH, 1, tz="UTC")
    return start if start <= now else start.subtract(years=1)


def _balance_sheet(rng: random.Random, begin: pendulum.DateTime, stop: pendulum.DateTime) -> dict:
    """One period of a balance sheet (dated at its last day)."""
    assets = _line(rng, "Assets", ("Fixed assets", "Current assets"))
    liabilities = _line(rng, "Liabilities", ("Current liabilities",))
    net = round(assets["value"] - liabilities["value"], 2)
    equity = {"name": "Equity", "value": net, "items": []}
    return {
        "date": fmt_local(stop),
        "assets": assets,
        "liabilities": liabilities,
        "netAssets": net,
        "equity": equity,
    }


def _profit_and_loss(rng: random.Random, begin: pendulum.DateTime, stop: pendulum.DateTime) -> dict:
    """One period of a profit and loss statement."""
    income = _line(rng, "Income", ("Sales", "Services"))
    cost = _line(rng, "Cost of sales", ("Materials",))
    expenses = _line(rng, "Expenses", ("Rent", "Wages"))
    gross = round(income["value"] - cost["value"], 2)
    operating = round(gross - expenses["value"], 2)
    return {
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


def _cash_flow(rng: random.Random, begin: pendulum.DateTime, stop: pendulum.DateTime) -> dict:
    """One period of a cash flow statement."""
    return {
        "fromDate": fmt_local(begin),
        "toDate": fmt_local(stop),
        "cashReceipts": _line(rng, "Cash receipts", ("Customers",)),
        "cashPayments": _line(rng, "Cash payments", ("Suppliers", "Payroll")),
    }


# The period builder of each statement; any other key is a cash flow statement.
_PERIOD_BUILDERS = {"balanceSheet": _balance_sheet, "profitAndLoss": _profit_and_loss}


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
    build = _PERIOD_BUILDERS.get(key, _cash_flow)
    reports = [
        build(rng, begin, stop) for begin, stop in statement_periods(now, period_length, periods, start_month)
    ]
    body: dict = {"reports": reports, "currency": "GBP"}
    if key != "balanceSheet":
        body["reportBasis"] = "Accrual"
    if key == "cashFlowStatement":
        body["reportInput"] = "Indirect"
    if reports:
        earliest, latest = available_months(now)
        body["mostRecentAvailableMonth"] = fmt_local(latest)
        body["earliestAvailableMonth"] = fmt_local(earliest)
    return body


def company_info(company: dict, now: datetime) -> dict:
    """The accounting ``company`` data type (``/data/info``).

    :param company: the company body.
    :param now: the simulated time (dates the current financial year).
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
        "financialYearStartDate": fmt_local(financial_year_start(now)),
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
