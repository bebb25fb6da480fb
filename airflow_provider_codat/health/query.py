"""What the page shows, read from the health tables only (never object storage, never landed files).

A view costs a handful of statements whatever the portfolio's size: one grouped read of the companies' states,
one of their connections, the page's companies in detail, and the deployment's figures.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select

from airflow_provider_codat.health.freshness import (
    BROKEN_CONNECTIONS,
    STATES,
    allowed_age,
    company_state,
)
from airflow_provider_codat.health.record import QUOTA, RATE, get_meta, instant
from airflow_provider_codat.health.schema import CONNECTIONS, DAYS, MINUTES, TYPES

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

    :param readable_dags: the DAGs the user may read: only their companies are shown.
    """
    dags = sorted(readable_dags)
    if not dags:
        return {"companies": [], "matching": 0, "states": dict.fromkeys(STATES, 0), "ask": ask}
    periods = _schedules(connection, dags)
    lines: dict[str, CompanyLine] = {}
    for start in range(0, len(dags), _CHUNK):
        _fold_groups(connection, dags[start : start + _CHUNK], periods, lines, now)
    _note_broken(connection, lines)
    for line in lines.values():
        line.state = company_state(failed=line.failed, broken=line.broken, late=line.late)
    states = dict.fromkeys(STATES, 0)
    for line in lines.values():
        states[line.state] += 1
    chosen = _sorted(_filtered(list(lines.values()), ask), ask.sort)
    page = chosen[(ask.page - 1) * PAGE_SIZE : ask.page * PAGE_SIZE]
    _details(connection, page, dags)
    return {"companies": page, "matching": len(chosen), "states": states, "ask": ask}


def _schedules(connection: Any, dags: list[str]) -> dict[str, timedelta]:
    from airflow.models.dag import DagModel

    dag = DagModel.__table__
    found: dict[str, timedelta] = {}
    for start in range(0, len(dags), _CHUNK):
        query = select(dag.c.dag_id, dag.c.timetable_summary).where(
            dag.c.dag_id.in_(dags[start : start + _CHUNK])
        )
        found.update({dag_id: allowed_age(summary) for dag_id, summary in connection.execute(query)})
    return found


def _fold_groups(
    connection: Any, dags: list[str], ages: dict[str, timedelta], lines: dict[str, CompanyLine], now: datetime
) -> None:
    query = (
        select(
            TYPES.c.company_id,
            TYPES.c.dag_id,
            func.max(TYPES.c.company_name),
            func.min(TYPES.c.landed_at),
            func.count(TYPES.c.landed_at) < func.count(),
            func.sum(case((TYPES.c.status == "failed", 1), else_=0)),
            func.max(TYPES.c.error_at),
        )
        .where(TYPES.c.dag_id.in_(dags))
        .group_by(TYPES.c.company_id, TYPES.c.dag_id)
    )
    for company_id, dag_id, name, oldest, never, failed, error_at in connection.execute(query):
        line = lines.get(company_id) or lines.setdefault(company_id, CompanyLine(company_id, name))
        line.name = line.name or name
        oldest = instant(oldest)
        deadline = now - ages.get(dag_id, allowed_age(None))
        line.late = line.late or bool(never) or oldest is None or oldest < deadline
        line.failed = line.failed or bool(failed)
        if oldest is not None and (line.oldest_landing is None or oldest < line.oldest_landing):
            line.oldest_landing = oldest
        error_at = instant(error_at)
        if error_at is not None and (line.last_error_at is None or error_at > line.last_error_at):
            line.last_error_at = error_at


def _note_broken(connection: Any, lines: dict[str, CompanyLine]) -> None:
    query = select(CONNECTIONS.c.company_id).where(CONNECTIONS.c.status.in_(sorted(BROKEN_CONNECTIONS)))
    for (company_id,) in connection.execute(query):
        if company_id in lines:
            lines[company_id].broken = True


def _filtered(lines: list[CompanyLine], ask: Ask) -> list[CompanyLine]:
    if ask.filter == "stale":
        lines = [line for line in lines if line.late]
    elif ask.filter == "broken":
        lines = [line for line in lines if line.broken]
    elif ask.filter == "failed":
        lines = [line for line in lines if line.failed]
    if ask.search:
        needle = ask.search.lower()
        lines = [line for line in lines if needle in (line.name or "").lower() or needle in line.company_id]
    return lines


def _sorted(lines: list[CompanyLine], sort: str) -> list[CompanyLine]:
    never = datetime.min.replace(tzinfo=UTC)
    if sort == "name":
        return sorted(lines, key=lambda line: ((line.name or "").lower(), line.company_id))
    if sort == "oldest":
        return sorted(lines, key=lambda line: (line.oldest_landing or never, line.company_id))
    if sort == "error":
        return sorted(lines, key=lambda line: (line.last_error_at or never, line.company_id), reverse=True)
    rank = {state: number for number, state in enumerate(STATES)}
    return sorted(lines, key=lambda line: (rank[line.state], (line.name or "").lower(), line.company_id))


def _details(connection: Any, page: list[CompanyLine], dags: list[str]) -> None:
    by_id = {line.company_id: line for line in page}
    if not by_id:
        return
    types = select(TYPES).where(TYPES.c.company_id.in_(list(by_id)), TYPES.c.dag_id.in_(dags))
    for row in connection.execute(types.order_by(TYPES.c.data_type)).mappings():
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
