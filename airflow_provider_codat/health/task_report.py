"""Push a company task's health report (:mod:`.report`) as its XCom ``codat_health``; and a company listing's
report of the connections' statuses it saw.

Called by :class:`~airflow_provider_codat.operators.company.CodatCompanySyncOperator` as it ends, before it
returns or fails: a report that cannot be built or pushed is logged and never fails the task.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_codat.health.report import REPORT_KEY, build_report, listed_connections

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_codat.company_sync import CompanySync
    from airflow_provider_codat.hooks.codat import CodatHook

log = logging.getLogger(__name__)


def push_health_report(
    context: Context,
    sync: CompanySync,
    *,
    hook: CodatHook,
    company_name: str | None = None,
    table_results: Mapping[str, Mapping[str, Any]] | None = None,
) -> None:
    """Push the task's report.

    :param context: the task's context.
    :param sync: the finished sync (its results and the syncs waited for).
    :param hook: the task's hook (its request budget's last quota).
    :param company_name: the company's name, for a one-company task.
    :param table_results: ``{data_type: merge result}`` of the task's table merges.
    """
    try:
        ti = context["ti"]
        progress = sync.progress
        names = {progress.companies[0]: company_name} if company_name and len(progress.companies) == 1 else {}
        changes = {
            t: int(r.get("inserted", 0)) - int(r.get("deleted", 0)) for t, r in (table_results or {}).items()
        }
        budget, quota, reserve = _budget_state(hook)
        report = build_report(
            dag_id=str(ti.dag_id),
            run_id=str(context["run_id"]),
            task_id=str(ti.task_id),
            results=progress.results,
            syncs={key: s.outcomes for key, s in progress.syncs.items()},
            names=names,
            table_changes=changes,
            quota=quota,
            requests_per_minute=budget,
            quota_reserve=reserve,
        )
        ti.xcom_push(key=REPORT_KEY, value=report)
    except Exception:  # the page misses one report; the data landed all the same
        log.warning("Could not push the Codat health report", exc_info=True)


def _budget_state(hook: CodatHook) -> tuple[int | None, Any, int | None]:
    from airflow_provider_codat.budget import budget_for

    settings = hook.budget_settings()
    quota = budget_for(settings).quota()
    reserve = settings.reserve_for(quota.limit) if quota is not None else None
    return settings.requests_per_minute, quota, reserve


def push_connection_report(context: Context, companies: Iterable[Mapping[str, Any]]) -> None:
    """Push the connections' statuses a company listing saw (``list_companies()``: each company with its
    ``dataConnections``), as a report with no company outcomes. Never fails the task.

    :param context: the listing task's context.
    :param companies: the listed companies.
    """
    push_task_report(
        context, "the connection statuses", lambda: {"connections": listed_connections(companies)}
    )


def push_task_report(context: Context, what: str, fields: Callable[[], dict[str, Any]]) -> None:
    """Push a report of a task that synced no company (a listing, a merge): what ``fields`` works out, with the
    task's ids. Never fails the task: the page keeps what it had.

    :param context: the task's context.
    :param what: what the report carries, for the warning when it cannot be pushed.
    :param fields: works out :func:`~.report.build_report`'s other arguments (inside the guard).
    """
    try:
        ti = context["ti"]
        report = build_report(
            dag_id=str(ti.dag_id),
            run_id=str(context["run_id"]),
            task_id=str(ti.task_id),
            results={},
            syncs={},
            **fields(),
        )
        ti.xcom_push(key=REPORT_KEY, value=report)
    except Exception:
        log.warning("Could not push %s to the Codat health page", what, exc_info=True)
