"""What the page shows, read from the health tables only (never object storage, never landed files).

A view costs a handful of statements whatever the portfolio's size: the counts per state, the matching count and
the asked page, all three over the list's rows (one per company, kept by the fold); the page's companies in
detail; the deployment's figures.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, literal, or_, select, true

from airflow_provider_codat.health.freshness import (
    BROKEN_CONNECTIONS,
    ERROR,
    LATE,
    ON_TIME,
    STATES,
    allowed_age,
)
from airflow_provider_codat.health.record import QUOTA, RATE, allowed_ages, get_meta, instant
from airflow_provider_codat.health.schema import COMPANIES, CONNECTIONS, DAYS, MINUTES, PORTFOLIO, TYPES

PAGE_SIZE = 50
FILTERS = ("all", "stale", "broken", "failed")
SORTS = ("state", "name", "oldest", "error")
_CHUNK = 500


@dataclass
class CompanyLine:
    """One company of the list."""

    company_id: str
    name: str | None
    state: str = ""
    failed: bool = False
    broken: bool = False
    late: bool = False
    oldest_landing: datetime | None = None
    last_error_at: datetime | None = None
    types: list[dict[str, Any]] = field(default_factory=list)
    connections: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Ask:
    """What the user asked for: a filter, a search, a sort and a page."""

    filter: str = "all"
    search: str = ""
    sort: str = "state"
    page: int = 1

    @classmethod
    def of(cls, *, filter: str, search: str, sort: str, page: int) -> Ask:
        """Checked values (anything unknown falls back to the default)."""
        return cls(
            filter=filter if filter in FILTERS else "all",
            search=search.strip()[:100],
            sort=sort if sort in SORTS else "state",
            page=max(1, page),
        )


def portfolio(connection: Any, readable_dags: Collection[str], ask: Ask, *, now: datetime) -> dict[str, Any]:
    """The companies of ``readable_dags`` as ``ask`` selects them, and the counts per state.

    Reads the list's rows (``codat_health_company``, one per company and DAG): the state is worked out in SQL
    against each DAG's deadline, then counted, filtered, sorted and paged there; only the page's companies
    are read in detail.

    :param readable_dags: the DAGs the user may read: only their companies are shown.
    """
    recorded = {d for (d,) in connection.execute(select(COMPANIES.c.dag_id).distinct())}
    dags = sorted(recorded.intersection(readable_dags))
    if not dags:
        return {"companies": [], "matching": 0, "states": dict.fromkeys(STATES, 0), "ask": ask}
    # A user who may read every DAG that recorded a company reads the rows across DAGs: no grouping.
    lines = _every_line(now) if len(dags) == len(recorded) else _lines(connection, dags, now)
    # One pass counts both: the companies per state, and those the filter and the search select.
    flags = {
        "stale": lines.c.late > 0,
        "broken": lines.c.broken > 0,
        "failed": lines.c.failed > 0,
        "found": _search(lines, ask.search),
    }
    keys = [lines.c.rank, *(case((flag, 1), else_=0).label(name) for name, flag in flags.items())]
    states, matching = dict.fromkeys(STATES, 0), 0
    for row in connection.execute(select(*keys, func.count().label("n")).group_by(*keys)).mappings():
        states[STATES[row["rank"]]] += int(row["n"])
        if row["found"] and (ask.filter not in flags or row[ask.filter]):
            matching += int(row["n"])
    chosen = select(lines).where(flags["found"])
    if ask.filter in flags:
        chosen = chosen.where(flags[ask.filter])
    query = chosen.order_by(*_order(lines, ask.sort)).limit(PAGE_SIZE).offset((ask.page - 1) * PAGE_SIZE)
    page = [_line(row) for row in connection.execute(query).mappings()]
    _details(connection, page, dags)
    return {"companies": page, "matching": matching, "states": states, "ask": ask}


def _broken_ids() -> Any:
    return select(CONNECTIONS.c.company_id).where(CONNECTIONS.c.status.in_(sorted(BROKEN_CONNECTIONS)))


def _every_line(now: datetime) -> Any:
    """One row per company across every DAG (``codat_health_portfolio``), as :func:`_lines` gives them."""
    rows = PORTFOLIO.c
    late = case(
        (or_(rows.never_landed > 0, rows.due_at.is_(None), rows.due_at < literal(now, rows.due_at.type)), 1),
        else_=0,
    )
    broken = rows.company_id.in_(_broken_ids())
    rank = case(
        (or_(rows.failed > 0, broken), STATES.index(ERROR)),
        (late > 0, STATES.index(LATE)),
        else_=STATES.index(ON_TIME),
    )
    return select(
        rows.company_id,
        rows.company_name.label("name"),
        rows.name_key,
        rows.oldest_landing,
        rows.last_error_at,
        late.label("late"),
        rows.failed,
        case((broken, 1), else_=0).label("broken"),
        rank.label("rank"),
    ).subquery()


def _lines(connection: Any, dags: list[str], now: datetime) -> Any:
    """One row per company of ``dags``: its name, flags, state's rank (:data:`STATES`) and sort keys."""
    rows = COMPANIES.c
    deadlines = {dag_id: now - age for dag_id, age in allowed_ages(connection, dags).items()}
    default = literal(now - allowed_age(None), rows.oldest_landing.type)
    deadline = (
        case(
            {d: literal(t, rows.oldest_landing.type) for d, t in deadlines.items()},
            value=rows.dag_id,
            else_=default,
        )
        if deadlines
        else default
    )
    late = case(
        (or_(rows.never_landed > 0, rows.oldest_landing.is_(None), rows.oldest_landing < deadline), 1),
        else_=0,
    )
    per = (
        select(
            rows.company_id,
            func.max(rows.company_name).label("name"),
            func.max(rows.name_key).label("name_key"),
            func.min(rows.oldest_landing).label("oldest_landing"),
            func.max(rows.last_error_at).label("last_error_at"),
            func.max(late).label("late"),
            func.sum(rows.failed).label("failed"),
        )
        .where(rows.dag_id.in_(dags))
        .group_by(rows.company_id)
        .subquery()
    )
    broken_ids = _broken_ids()
    broken = case((per.c.company_id.in_(broken_ids), 1), else_=0)
    rank = case(
        (or_(per.c.failed > 0, per.c.company_id.in_(broken_ids)), STATES.index(ERROR)),
        (per.c.late > 0, STATES.index(LATE)),
        else_=STATES.index(ON_TIME),
    )
    return select(per, broken.label("broken"), rank.label("rank")).subquery()


def _search(lines: Any, search: str) -> Any:
    """A company whose name or id holds ``search`` (any company when it is empty)."""
    if not search:
        return true()
    needle = search.lower()
    return or_(
        lines.c.name_key.contains(needle, autoescape=True),
        lines.c.company_id.contains(needle, autoescape=True),
    )


def _order(lines: Any, sort: str) -> list[Any]:
    c = lines.c
    if sort == "name":
        return [c.name_key, c.company_id]
    if sort == "oldest":  # never landed first
        return [case((c.oldest_landing.is_(None), 0), else_=1), c.oldest_landing, c.company_id]
    if sort == "error":  # latest error first, companies without one last
        return [case((c.last_error_at.is_(None), 1), else_=0), c.last_error_at.desc(), c.company_id.desc()]
    return [c.rank, c.name_key, c.company_id]


def _line(row: Any) -> CompanyLine:
    return CompanyLine(
        company_id=row["company_id"],
        name=row["name"],
        state=STATES[row["rank"]],
        failed=bool(row["failed"]),
        broken=bool(row["broken"]),
        late=bool(row["late"]),
        oldest_landing=instant(row["oldest_landing"]),
        last_error_at=instant(row["last_error_at"]),
    )


def _details(connection: Any, page: list[CompanyLine], dags: list[str]) -> None:
    by_id = {line.company_id: line for line in page}
    if not by_id:
        return
    # By the companies only (their primary key), the DAGs filtered here: with ``dag_id`` in the statement a
    # planner may walk the DAG index, every type row of those DAGs, instead of the page's few hundred.
    readable = set(dags)
    types = select(TYPES).where(TYPES.c.company_id.in_(list(by_id)))
    for row in connection.execute(types.order_by(TYPES.c.company_id, TYPES.c.data_type)).mappings():
        if row["dag_id"] in readable:
            by_id[row["company_id"]].types.append(dict(row))
    links = select(CONNECTIONS).where(CONNECTIONS.c.company_id.in_(list(by_id)))
    for row in connection.execute(links.order_by(CONNECTIONS.c.connection_id)).mappings():
        by_id[row["company_id"]].connections.append(dict(row))


def deployment(connection: Any, *, now: datetime, inbox_waiting: int | None) -> dict[str, Any]:
    """The deployment's figures: requests against the budget, the daily quota, the inbox, the two charts."""
    this_minute = int(now.timestamp() // 60)
    minutes = dict(
        connection.execute(
            select(MINUTES.c.minute, MINUTES.c.requests).where(MINUTES.c.minute > this_minute - 24 * 60)
        ).all()
    )
    oldest_day = (now - timedelta(days=29)).date().isoformat()
    days = dict(connection.execute(select(DAYS.c.day, DAYS.c.records).where(DAYS.c.day >= oldest_day)).all())
    quota_text = get_meta(connection, QUOTA)
    rate = get_meta(connection, RATE)
    return {
        "requests_last_minute": minutes.get(this_minute, 0),
        "requests_last_hour": sum(n for m, n in minutes.items() if m > this_minute - 60),
        "requests_per_minute": int(rate) if rate else None,
        "quota": json.loads(quota_text) if quota_text else None,
        "inbox_waiting": inbox_waiting,
        "per_minute": [minutes.get(m, 0) for m in range(this_minute - 24 * 60 + 1, this_minute + 1)],
        "per_day": [
            (
                (now - timedelta(days=back)).date().isoformat(),
                days.get((now - timedelta(days=back)).date().isoformat(), 0),
            )
            for back in range(29, -1, -1)
        ],
    }
