"""Write what the page reads: a task's health report, a connection's status, and keep the tables bounded."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, delete, func, insert, select

from airflow_provider_codat.budget.usage import KEEP_MINUTES
from airflow_provider_codat.health.freshness import allowed_age
from airflow_provider_codat.health.schema import (
    COMPANIES,
    CONNECTIONS,
    DAYS,
    KEEP_DAYS,
    META,
    MINUTES,
    PORTFOLIO,
    TYPES,
)
from airflow_provider_codat.health.upsert import upsert

QUOTA = "quota"
RATE = "requests_per_minute"
_CHUNK = 500  # companies per look-up: well under every database's limit of bound parameters


def instant(value: Any) -> datetime | None:
    """An aware UTC datetime from an ISO string or a datetime (naive means UTC, as SQLite gives it back)."""
    if value is None or value == "":
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def apply_report(connection: Any, report: Mapping[str, Any], *, at: datetime) -> None:
    """Fold one task's report (:mod:`.report`) into the tables, in ``connection``'s transaction.

    :param at: when the task pushed it (the landing's and the error's time).
    """
    companies: Mapping[str, Any] = report.get("companies") or {}
    stored = _stored_types(connection, list(companies))
    rows, landed = [], 0
    for company_id, company in companies.items():
        for data_type, entry in (company.get("types") or {}).items():
            if "status" not in entry:  # a merging task's count of table rows: the outcome stays as it is
                found = stored.get((company_id, data_type))
                if found is not None and entry.get("table_rows") is not None:
                    rows.append(found | {"table_rows": int(entry["table_rows"])})
                continue
            row = _type_row(
                stored.get((company_id, data_type)), company_id, data_type, company, entry, report, at
            )
            rows.append(row)
            if entry.get("status") == "extracted":
                landed += int(entry.get("records") or 0)
    upsert(connection, TYPES, rows)
    summarise(connection, list(companies))
    minutes = [{"minute": int(m), "requests": int(n)} for m, n in (report.get("minutes") or {}).items()]
    upsert(connection, MINUTES, minutes, add=("requests",))
    if landed:
        upsert(connection, DAYS, [{"day": at.date().isoformat(), "records": landed}], add=("records",))
    if report.get("quota"):
        note_quota(connection, report["quota"])
    if report.get(RATE):
        set_meta(connection, RATE, str(int(report[RATE])))
    if report.get("connections"):
        record_listed_connections(connection, report["connections"], at=at)


def summarise(connection: Any, company_ids: list[str]) -> None:
    """Rewrite the list's rows (``codat_health_company``) of ``company_ids`` from their type rows.

    Deleted then inserted: a company whose types moved to another DAG loses its row under the old one.
    """
    for start in range(0, len(company_ids), _CHUNK):
        chunk = company_ids[start : start + _CHUNK]
        grouped = (
            select(
                TYPES.c.company_id,
                TYPES.c.dag_id,
                func.max(TYPES.c.company_name),
                func.min(TYPES.c.landed_at),
                func.count() - func.count(TYPES.c.landed_at),
                func.sum(case((TYPES.c.status == "failed", 1), else_=0)),
                func.max(TYPES.c.error_at),
            )
            .where(TYPES.c.company_id.in_(chunk))
            .group_by(TYPES.c.company_id, TYPES.c.dag_id)
        )
        rows = [
            {
                "company_id": company_id,
                "dag_id": dag_id,
                "company_name": name,
                "name_key": (name or "").lower()[:256],
                "oldest_landing": instant(oldest),
                "never_landed": int(never or 0),
                "failed": int(failed or 0),
                "last_error_at": instant(error_at),
            }
            for company_id, dag_id, name, oldest, never, failed, error_at in connection.execute(grouped)
        ]
        connection.execute(delete(COMPANIES).where(COMPANIES.c.company_id.in_(chunk)))
        connection.execute(delete(PORTFOLIO).where(PORTFOLIO.c.company_id.in_(chunk)))
        if rows:
            connection.execute(insert(COMPANIES), rows)
            ages = allowed_ages(connection, sorted({row["dag_id"] for row in rows}))
            connection.execute(insert(PORTFOLIO), _across_dags(rows, ages))


def _across_dags(rows: list[dict[str, Any]], ages: dict[str, timedelta]) -> list[dict[str, Any]]:
    """One row per company from its rows per DAG (:data:`~.schema.PORTFOLIO`)."""
    by_company: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_company.setdefault(row["company_id"], []).append(row)
    merged = []
    for company_id, own in by_company.items():
        landed = [r for r in own if r["oldest_landing"] is not None]
        names = [r["company_name"] for r in own if r["company_name"]]
        errors = [r["last_error_at"] for r in own if r["last_error_at"] is not None]
        never = sum(r["never_landed"] for r in own)  # a row with no landing counts its types here
        merged.append(
            {
                "company_id": company_id,
                "company_name": max(names) if names else None,
                "name_key": max(r["name_key"] for r in own),
                "oldest_landing": min((r["oldest_landing"] for r in landed), default=None),
                "due_at": None
                if never
                else min(r["oldest_landing"] + ages.get(r["dag_id"], allowed_age(None)) for r in landed),
                "never_landed": never,
                "failed": sum(r["failed"] for r in own),
                "last_error_at": max(errors, default=None),
            }
        )
    return merged


def allowed_ages(connection: Any, dags: list[str]) -> dict[str, timedelta]:
    """How old each DAG's landings may be (:func:`~.freshness.allowed_age` of its schedule as Airflow lists it);
    a DAG Airflow does not know is left out."""
    from airflow.models.dag import DagModel

    dag = DagModel.__table__
    found: dict[str, timedelta] = {}
    for start in range(0, len(dags), _CHUNK):
        query = select(dag.c.dag_id, dag.c.timetable_summary).where(
            dag.c.dag_id.in_(dags[start : start + _CHUNK])
        )
        found.update({dag_id: allowed_age(summary) for dag_id, summary in connection.execute(query)})
    return found


def summarise_all(connection: Any) -> None:
    """Build every company's row from the type rows (a record kept before the list had its own table)."""
    company_ids = [c for (c,) in connection.execute(select(TYPES.c.company_id).distinct())]
    summarise(connection, company_ids)


def _stored_types(connection: Any, company_ids: list[str]) -> dict[tuple[str, str], dict[str, Any]]:
    found = {}
    for start in range(0, len(company_ids), _CHUNK):
        chunk = company_ids[start : start + _CHUNK]
        for row in connection.execute(select(TYPES).where(TYPES.c.company_id.in_(chunk))).mappings():
            found[(row["company_id"], row["data_type"])] = dict(row)
    return found


def _type_row(
    stored: dict[str, Any] | None,
    company_id: str,
    data_type: str,
    company: Mapping[str, Any],
    entry: Mapping[str, Any],
    report: Mapping[str, Any],
    at: datetime,
) -> dict[str, Any]:
    """The type's row after this outcome: a landing replaces the last landing, a failure the last error."""
    row = dict.fromkeys(column.name for column in TYPES.columns) | (stored or {})
    status = str(entry.get("status") or "unknown")
    row.update(
        company_id=company_id,
        data_type=data_type,
        company_name=company.get("name") or row["company_name"],
        dag_id=report["dag_id"],
        run_id=report["run_id"],
        task_id=report["task_id"],
        status=status,
        updated_at=at,
    )
    if entry.get("synced_at"):
        row["synced_at"] = instant(entry["synced_at"])
    if status == "extracted":
        row.update(landed_at=at, landed_run_id=report["run_id"], records=int(entry.get("records") or 0))
    elif status == "failed":
        row.update(
            error=str(entry.get("error") or "failed")[:1000],
            error_at=at,
            error_task=report["task_id"],
            error_run_id=report["run_id"],
        )
    if entry.get("table_rows") is not None:
        row["table_rows"] = int(entry["table_rows"])
    elif entry.get("table_change") is not None:
        row["table_rows"] = max(0, int(row["table_rows"] or 0) + int(entry["table_change"]))
    return row


def note_quota(connection: Any, quota: Mapping[str, Any]) -> None:
    """Keep the daily quota Codat reported last (an older observation does not replace a newer one)."""
    current = get_meta(connection, QUOTA)
    if current and float(json.loads(current).get("observed_at") or 0) > float(quota.get("observed_at") or 0):
        return
    set_meta(connection, QUOTA, json.dumps(dict(quota)))


def record_connection(connection: Any, notice_extra: Mapping[str, Any], *, at: datetime) -> None:
    """Keep a connection's status from a ``connection.*`` webhook's notice (``codat://connection-status``).

    :param notice_extra: the notice's extra: ``company_id``, ``connection_id``, ``platform``, ``status``.
    """
    if not (notice_extra.get("company_id") and notice_extra.get("connection_id")):
        return
    row = {
        "company_id": str(notice_extra["company_id"]),
        "connection_id": str(notice_extra["connection_id"]),
        "company_name": notice_extra.get("company_name"),
        "platform": notice_extra.get("platform"),
        "status": notice_extra.get("status"),
        "updated_at": at,
    }
    upsert(connection, CONNECTIONS, [row])


def record_listed_connections(connection: Any, listed: Iterable[Any], *, at: datetime) -> None:
    """Keep the statuses a company listing saw at ``at`` (a report's ``connections``,
    :func:`~.report.listed_connections`), except where a newer status is recorded (a webhook's, since)."""
    rows = {}
    for company_id, company_name, connection_id, platform, status in listed:
        rows[(company_id, connection_id)] = {
            "company_id": company_id,
            "connection_id": connection_id,
            "company_name": company_name,
            "platform": platform,
            "status": status,
            "updated_at": at,
        }
    companies = sorted({company_id for company_id, _ in rows})
    for start in range(0, len(companies), _CHUNK):
        chunk = companies[start : start + _CHUNK]
        newer = select(CONNECTIONS.c.company_id, CONNECTIONS.c.connection_id, CONNECTIONS.c.updated_at).where(
            CONNECTIONS.c.company_id.in_(chunk)
        )
        for company_id, connection_id, updated_at in connection.execute(newer):
            if instant(updated_at) > at:
                rows.pop((company_id, connection_id), None)
    upsert(connection, CONNECTIONS, list(rows.values()))


def record_connections(connection: Any, extras: Iterable[Mapping[str, Any]], *, at: datetime) -> None:
    """:func:`record_connection` for several notices."""
    for extra in extras:
        record_connection(connection, extra, at=at)


def get_meta(connection: Any, name: str) -> str | None:
    """A named value of ``codat_health_meta``."""
    return connection.execute(select(META.c.value).where(META.c.name == name)).scalar()


def set_meta(connection: Any, name: str, value: str) -> None:
    """Set a named value of ``codat_health_meta``."""
    upsert(connection, META, [{"name": name, "value": value}])


def prune(connection: Any, *, now: datetime) -> None:
    """Drop minutes older than a day and days older than 30: the charts' spans."""
    oldest_minute = int(now.timestamp() // 60) - KEEP_MINUTES
    connection.execute(delete(MINUTES).where(MINUTES.c.minute < oldest_minute))
    oldest_day = (now - timedelta(days=KEEP_DAYS)).date().isoformat()
    connection.execute(delete(DAYS).where(DAYS.c.day < oldest_day))
