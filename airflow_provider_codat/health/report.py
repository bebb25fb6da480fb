"""The health report a company task pushes as it ends (XCom ``codat_health``), whether it succeeds or fails.

Tasks cannot write to Airflow's metadata database (the Task SDK blocks it); an XCom is how a task's facts reach
it. The API server folds the reports into the health tables (:mod:`.fold`). A report is small: per company and
type a status, two instants, a count and a bounded error; the requests per minute this process sent; the last
daily quota Codat reported.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from airflow_provider_codat.budget.usage import take_counts

REPORT_KEY = "codat_health"
REPORT_VERSION = 1
MAX_ERROR_CHARS = 500


def type_entry(outcome: Mapping[str, Any], sync: Mapping[str, Any] | None) -> dict[str, Any]:
    """What the report keeps of one type's outcome.

    :param outcome: the type's extract outcome (``status``, ``records`` or ``error``).
    :param sync: the type's sync outcome (``last_successful_sync``), if it was waited for.
    """
    entry: dict[str, Any] = {"status": str(outcome.get("status") or "unknown")}
    if outcome.get("records") is not None:
        entry["records"] = int(outcome["records"])
    if outcome.get("error"):
        entry["error"] = str(outcome["error"])[:MAX_ERROR_CHARS]
    synced = (sync or {}).get("last_successful_sync")
    if synced:
        entry["synced_at"] = str(synced)
    return entry


def build_report(
    *,
    dag_id: str,
    run_id: str,
    task_id: str,
    results: Mapping[str, Mapping[str, Mapping[str, Any]]],
    syncs: Mapping[str, Mapping[str, Mapping[str, Any]]],
    names: Mapping[str, str] | None = None,
    table_changes: Mapping[str, int] | None = None,
    quota: Any = None,
    requests_per_minute: int | None = None,
    connections: list[list[str | None]] | None = None,
    quota_reserve: int | None = None,
    table_rows: Mapping[str, Mapping[str, int]] | None = None,
) -> dict[str, Any]:
    """The report of one task.

    :param dag_id: the task's DAG (the page shows a company to the users who may read it).
    :param run_id: the run, shown so that it can be found in the grid.
    :param task_id: the task.
    :param results: ``{company_id: {data_type: outcome}}``.
    :param syncs: ``{company_id: {data_type: sync outcome}}``.
    :param names: ``{company_id: name}`` where known.
    :param table_changes: ``{data_type: rows added minus rows deleted}`` of a one-company task's table merges.
    :param quota: the budget's last :class:`~airflow_provider_codat.budget.Quota`, if any.
    :param requests_per_minute: the budget's per-minute rate.
    :param quota_reserve: requests the budget keeps back from the quota (nearly spent at twice this).
    :param table_rows: ``{company_id: {data_type: rows}}`` in the current-state tables, counted by the task
        that merged them (an entry with no ``status``: the type's outcome is left as it is).
    :param connections: the statuses a company listing saw (:func:`listed_connections`).
    """
    companies = {}
    for company_id, by_type in results.items():
        types = {t: type_entry(o, (syncs.get(company_id) or {}).get(t)) for t, o in by_type.items()}
        if table_changes and len(results) == 1:
            for data_type, change in table_changes.items():
                types.setdefault(data_type, {"status": "extracted"})["table_change"] = int(change)
        companies[company_id] = {"name": (names or {}).get(company_id), "types": types}
    for company_id, by_type in (table_rows or {}).items():
        company = companies.setdefault(company_id, {"name": None, "types": {}})
        for data_type, rows in by_type.items():
            company["types"].setdefault(data_type, {})["table_rows"] = int(rows)
    report: dict[str, Any] = {
        "v": REPORT_VERSION,
        "dag_id": dag_id,
        "run_id": run_id,
        "task_id": task_id,
        "at": datetime.now(tz=UTC).isoformat(),
        "companies": companies,
        "minutes": {str(minute): n for minute, n in take_counts().items()},
    }
    if quota is not None:
        report["quota"] = {
            "limit": quota.limit,
            "remaining": quota.remaining,
            "resets_at": quota.resets_at,
            "observed_at": quota.observed_at,
        }
        if quota_reserve is not None:
            report["quota"]["reserve"] = int(quota_reserve)
    if requests_per_minute:
        report["requests_per_minute"] = int(requests_per_minute)
    if connections:
        report["connections"] = connections
    return report


def listed_connections(companies: Iterable[Mapping[str, Any]]) -> list[list[str | None]]:
    """``[company id, company name, connection id, platform, status]`` of each listed company's connections:
    compact, as a listing of 10,000 companies goes into one report."""
    rows = []
    for company in companies:
        for connection in company.get("dataConnections") or []:
            if company.get("id") and connection.get("id"):
                rows.append(
                    [
                        str(company["id"]),
                        _short(company.get("name")),
                        str(connection["id"]),
                        _short(connection.get("platformName")),
                        _short(connection.get("status")),
                    ]
                )
    return rows


def _short(value: Any) -> str | None:
    return None if value is None else str(value)[:128]
