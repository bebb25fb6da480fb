"""The small tasks of the Codat sync DAGs: ``portfolio``, ``batches``, ``summary`` and ``relink_report``.

They decide which companies a run syncs and how they are batched, resolve the destination at run time, and
summarise a run. Plain Python behind ``@task``, so each can be called directly (``batches.function(...)``) in a
test.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from typing import Any

from airflow.sdk import Asset, get_current_context, task
from airflow.sdk.exceptions import AirflowException

from airflow_provider_codat.assets import CONNECTION_STATUS_URI
from airflow_provider_codat.datatypes import get_data_type
from airflow_provider_codat.defaults import DEFAULT_CONN_ID
from airflow_provider_codat.landing.destination import resolve_destination

log = logging.getLogger(__name__)

# Where the batches task shows the run's plan (its requests against today's budget).
PLAN_XCOM_KEY = "codat_plan"
# Connection statuses that mean the company has to link its platform again (Codat: only Linked syncs).
RELINK_STATUSES = ("Deauthorized", "Unlinked", "PendingAuth")
# How far back the re-link report looks at the connection problems Codat's webhooks announced (a month's run).
WEBHOOK_LOOKBACK_DAYS = 31


def _max_map_length() -> int:
    from airflow_provider_codat.version_compat import conf

    return conf.getint("core", "max_map_length", fallback=1024)


def _as_list(value: Any) -> list:
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return list(value)


def _company_entries(companies: Any) -> list[dict[str, str | None]]:
    """``[{id, name}]`` from ids, ``{id, name}`` dicts (from :func:`portfolio`) or a comma-separated string."""
    entries: dict[str, str | None] = {}
    for item in _as_list(companies):
        if isinstance(item, dict):
            entries.setdefault(str(item["id"]), item.get("name"))
        else:
            entries.setdefault(str(item), None)
    return [{"id": company_id, "name": name} for company_id, name in entries.items()]


def _label(batch: list[dict[str, str | None]]) -> str:
    first = batch[0]["name"] or batch[0]["id"]
    return first if len(batch) == 1 else f"{first} + {len(batch) - 1} more"


def _checked_types(data_types: Any, allowed: list[str] | None) -> list[str]:
    """The run's data types, each once: known to the catalogue and, when ``allowed`` is given, among those."""
    types = list(dict.fromkeys(_as_list(data_types)))
    if not types:
        raise AirflowException("No data types to sync: give at least one (e.g. invoices).")
    for key in types:
        get_data_type(key)  # an unknown key fails here, listing the valid ones
    if allowed is not None and set(types) - set(allowed):
        raise AirflowException(
            f"{', '.join(sorted(set(types) - set(allowed)))}: not in this DAG's table. Choose among "
            f"{', '.join(allowed)}, or add the type to the table."
        )
    return types


def _name_companies(entries: list[dict[str, str | None]], codat_conn_id: str) -> None:
    """Fill in the names of companies given without one, from one listing of Codat's companies."""
    if all(entry["name"] is not None for entry in entries):
        return
    from airflow_provider_codat.hooks.codat import CodatHook

    names = {str(c["id"]): c.get("name") for c in CodatHook(codat_conn_id=codat_conn_id).list_companies()}
    for entry in entries:
        entry["name"] = entry["name"] or names.get(entry["id"])


def _work_items(
    entries: list[dict[str, str | None]], size: int, types: list[str], destination: str, full: bool
) -> list[dict[str, Any]]:
    """One work item per task instance: ``size`` companies each (a single company's id as it is)."""
    work = []
    for start in range(0, len(entries), size):
        batch = entries[start : start + size]
        ids = [entry["id"] for entry in batch]
        work.append(
            {
                "company_id": ids[0] if size == 1 else ids,
                "company_name": _label(batch),
                "data_types": types,
                "destination": destination,
                "full_refresh": full,
            }
        )
    return work


# -- the tasks of the group ---------------------------------------------------------------------------------
@task
def batches(
    companies: Any,
    data_types: Any,
    allowed: list[str] | None = None,
    destination: str | None = None,
    full_refresh: Any = False,
    codat_conn_id: str = DEFAULT_CONN_ID,
    reconcile: list[str] | None = None,
    ti: Any = None,
) -> list[dict[str, Any]]:
    """The work of the run, one entry per task instance: a company, or past ``max_map_length`` a batch.

    Companies given without names are named from one listing of Codat's companies, so that the grid shows
    names. The batch size is decided here, at run time, from the number of companies and Airflow's
    ``[core] max_map_length``: no configuration change is needed for 10,000 companies.

    In a task (``ti`` given, as Airflow does), it also logs the run's plan: the requests it expects against
    the request budget left today (the reconciles of the ``reconcile`` types among the run's included), pushed
    as XCom ``codat_plan``.
    """
    entries = _company_entries(companies)
    types = _checked_types(data_types, allowed)
    _name_companies(entries, codat_conn_id)
    size = max(1, math.ceil(len(entries) / _max_map_length()))
    resolved = resolve_destination(destination)
    full = str(full_refresh).strip().lower() in {"true", "1", "yes", "on"}
    log.info(
        "Syncing %d data types for %d companies (%d per task) to %s: %s",
        len(types),
        len(entries),
        size,
        resolved,
        ", ".join(types),
    )
    if ti is not None:
        reconciled = [key for key in reconcile or () if key in types]
        ti.xcom_push(key=PLAN_XCOM_KEY, value=_plan(len(entries), types, codat_conn_id, reconciled))
    return _work_items(entries, size, types, resolved, full)


def _plan(
    companies: int, types: list[str], codat_conn_id: str, reconcile: list[str] | None = None
) -> dict[str, Any]:
    """The requests the run expects against today's budget, logged (a warning when the quota will not do)."""
    from airflow_provider_codat.budget import budget_for
    from airflow_provider_codat.budget.request_plan import describe, run_plan
    from airflow_provider_codat.hooks.codat import CodatHook

    settings = CodatHook(codat_conn_id=codat_conn_id).budget_settings()
    plan = run_plan(companies, types, settings, budget_for(settings).quota(), reconcile=reconcile or [])
    message = describe(plan)
    (log.info if plan["fits_in_quota"] is not False else log.warning)("%s", message)
    return plan


def _by_company(result: dict[str, Any] | None) -> dict[str, dict[str, dict]]:
    """A sync task's return value as ``{company_id: {data_type: outcome}}``: a company's ``{data_type:
    outcome}`` (each outcome names its company) or a batch's ``{company_id: {data_type: outcome}}``."""
    result = result or {}
    first = next(iter(result.values()), None)
    if isinstance(first, dict) and "status" in first:
        return {str(first["company_id"]): result}
    return dict(result)


def _company_names(work: list[dict]) -> dict[str, str]:
    """``{company_id: label}`` of every planned company: its name when it had a task of its own, else its id."""
    names = {}
    for item in work:
        ids = [item["company_id"]] if isinstance(item["company_id"], str) else item["company_id"]
        for company_id in ids:
            names[company_id] = item["company_name"] if len(ids) == 1 else company_id
    return names


def _totals_by_type(landed: dict[str, dict[str, dict]]) -> dict[str, dict[str, int]]:
    """Companies extracted, records and deleted records per data type (and ``tombstoned``, the deletions the
    reconciles landed, for the types reconciled), each logged on one line."""
    by_type: dict[str, dict[str, int]] = {}
    for outcomes in landed.values():
        for data_type, outcome in outcomes.items():
            totals = by_type.setdefault(data_type, {"companies": 0, "records": 0, "deleted": 0})
            if outcome.get("status") == "extracted":
                totals["companies"] += 1
                totals["records"] += int(outcome.get("records") or 0)
                totals["deleted"] += int(outcome.get("deleted") or 0)
            reconciled = outcome.get("reconcile") or {}
            if "tombstoned" in reconciled:
                totals["tombstoned"] = totals.get("tombstoned", 0) + int(reconciled["tombstoned"])
    for data_type, totals in sorted(by_type.items()):
        log.info(
            "%-24s %6d companies %9d records %7d deleted%s",
            data_type,
            totals["companies"],
            totals["records"],
            totals["deleted"],
            f" ({totals['tombstoned']} by reconcile)" if "tombstoned" in totals else "",
        )
    return by_type


def _failure(failed: list[str], names: dict[str, str]) -> AirflowException:
    """The summary's failure, naming the first 20 companies that did not land all their data."""
    shown = ", ".join(f"{names[c]} ({c})" if names[c] != c else c for c in failed[:20])
    more = f" and {len(failed) - 20} more" if len(failed) > 20 else ""
    return AirflowException(
        f"{len(failed)} of {len(names)} companies did not land all their data: {shown}{more}. Each failed "
        "sync task (labelled with the company's name) names the data types and Codat's message; every "
        "other type and company was committed."
    )


@task(trigger_rule="all_done")
def summary(work: list[dict] | None, results: Iterable[dict] | None) -> dict[str, Any]:
    """Totals per data type, and a failure naming every company that did not land all its data.

    :param work: what :func:`batches` planned.
    :param results: the sync tasks' return values (Airflow hands over those of the tasks that succeeded).
    """
    if work is None:
        raise AirflowException("The companies and data types could not be worked out: see the task before.")
    landed: dict[str, dict[str, dict]] = {}
    for result in results or []:
        landed.update(_by_company(result))
    names = _company_names(work)
    by_type = _totals_by_type(landed)
    failed = [company_id for company_id in names if company_id not in landed]
    if failed:
        raise _failure(failed, names)
    return {
        "companies": len(names),
        "companies_ok": [company_id for company_id in names if company_id in landed],
        "destination": work[0]["destination"] if work else None,
        "by_type": by_type,
        "failed": failed,
    }


@task(multiple_outputs=True)
def portfolio(codat_conn_id: str = DEFAULT_CONN_ID) -> dict[str, Any]:
    """The run's work from its Params: the companies with their names (empty: every company with a Linked
    connection), the data types, the destination and the full-refresh flag."""
    from airflow_provider_codat.health.task_report import push_connection_report
    from airflow_provider_codat.hooks.codat import CodatHook

    context = get_current_context()
    params = context["params"]
    given = list(dict.fromkeys(_as_list(params.get("company_ids"))))
    companies = list(CodatHook(codat_conn_id=codat_conn_id).list_companies())
    push_connection_report(context, companies)  # the connections' statuses, for the health page
    linked = [
        {"id": str(c["id"]), "name": c.get("name")}
        for c in companies
        if any(conn.get("status") == "Linked" for conn in c.get("dataConnections") or [])
    ]
    if given:
        names = {str(c["id"]): c.get("name") for c in companies}
        unlinked = sorted(set(given) - {c["id"] for c in linked})
        if unlinked:
            log.warning("Not Linked, their syncs will likely fail: %s", ", ".join(unlinked))
        chosen = [{"id": company_id, "name": names.get(company_id)} for company_id in given]
    else:
        chosen = linked
    log.info("%d companies of %d listed", len(chosen), len(companies))
    return {
        "companies": chosen,
        "data_types": _as_list(params.get("data_types")),
        "full_refresh": bool(params.get("full_refresh")),
        "destination": resolve_destination(params.get("destination")),
    }


@task(trigger_rule="all_done", inlets=[Asset(CONNECTION_STATUS_URI)])
def relink_report(codat_conn_id: str = DEFAULT_CONN_ID) -> list[dict[str, Any]]:
    """List the companies whose connection is Deauthorized, Unlinked or PendingAuth: they must re-link.

    Each row also says when Codat's webhooks announced the problem (``reported_at``, ``reported_as``: the
    latest ``connection.disconnected``/``failed`` event on ``codat://connection-status`` in the last
    :data:`WEBHOOK_LOOKBACK_DAYS` days), ``None`` when no webhook said so.
    """
    from airflow_provider_codat.hooks.codat import CodatHook

    hook = CodatHook(codat_conn_id=codat_conn_id)
    announced = _announced_connection_problems()
    report = []
    for company in hook.list_companies():
        for connection in company.get("dataConnections") or []:
            if connection.get("status") in RELINK_STATUSES:
                event = announced.get(connection.get("id")) or {}
                report.append(
                    {
                        "company_id": company["id"],
                        "company_name": company.get("name"),
                        "connection_id": connection.get("id"),
                        "platform": connection.get("platformName"),
                        "status": connection.get("status"),
                        "link_url": connection.get("linkUrl"),
                        "portal_url": hook.portal_url(company["id"]),
                        "reported_at": event.get("reported_at"),
                        "reported_as": event.get("event_type"),
                    }
                )
    _log_relink_report(report)
    return report


@task(trigger_rule="all_done")
def table_maintenance(
    destination: str | None, tables: str | None = None, retention_hours: float = 168
) -> list[dict[str, Any]]:
    """Compact, cluster by company and vacuum every current-state table (docs/tables.md, *Retention*).

    :param destination: the landing's destination (the tables are under ``{destination}/_tables``).
    :param tables: the tables' folder when it is elsewhere.
    :param retention_hours: how long files older versions need are kept (time travel this far back).
    """
    from datetime import timedelta

    from airflow_provider_codat.tables.location import tables_root
    from airflow_provider_codat.tables.maintenance import maintain_tables

    root = tables_root(resolve_destination(destination), tables)
    done = maintain_tables(root, retention=timedelta(hours=retention_hours))
    log.info("Maintained %d tables under %s", len(done), root)
    return done


def _announced_connection_problems() -> dict[str, dict[str, Any]]:
    """Connection id -> the latest webhook problem event (``event_type``, ``reported_at``) of the lookback
    window, for connections whose latest event there is not ``connection.reconnected``."""
    from datetime import UTC, datetime, timedelta

    from airflow_provider_codat.version_compat import inlet_events_since

    context = get_current_context()
    accessor = (context.get("inlet_events") or {}).get(Asset(CONNECTION_STATUS_URI))
    if accessor is None:
        return {}
    since = datetime.now(tz=UTC) - timedelta(days=WEBHOOK_LOOKBACK_DAYS)
    latest: dict[str, dict[str, Any]] = {}
    for event in sorted(inlet_events_since(accessor, since), key=lambda e: e.timestamp):
        extra = event.extra or {}
        if extra.get("connection_id"):
            latest[extra["connection_id"]] = {
                "event_type": extra.get("event_type"),
                "reported_at": event.timestamp.isoformat(),
            }
    return {cid: e for cid, e in latest.items() if e["event_type"] != "connection.reconnected"}


def _log_relink_report(report: list[dict[str, Any]]) -> None:
    if not report:
        log.info("Every connection is Linked.")
        return
    log.warning("%d connections need re-linking:", len(report))
    for row in report:
        log.warning(
            "  %s (%s): %s connection %s is %s; re-link at %s%s",
            row["company_name"],
            row["company_id"],
            row["platform"],
            row["connection_id"],
            row["status"],
            row["link_url"] or row["portal_url"],
            f" (Codat announced {row['reported_as']} at {row['reported_at']})" if row["reported_at"] else "",
        )
