"""The small tasks of the Codat sync DAGs (see :mod:`airflow_provider_codat.dags_builder`).

They decide who is refreshed and extracted, resolve the destination at run time, and summarise a run. Plain
Python behind ``@task``, so each can be called directly (``plan.function(...)``) in a test.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import Any

from airflow.sdk import get_current_context, task
from airflow.sdk.exceptions import AirflowException

from airflow_provider_codat.datatypes import get_data_type

log = logging.getLogger(__name__)

DESTINATION_VARIABLE = "codat_destination"
# Connection statuses that mean the company has to link its platform again (Codat: only Linked syncs).
RELINK_STATUSES = ("Deauthorized", "Unlinked", "PendingAuth")
SUCCESS, NOT_SUPPORTED = "Complete", "NotSupported"


def default_destination() -> str:
    """Where data lands when neither the Params nor the ``codat_destination`` Variable say: a folder under
    ``AIRFLOW_HOME``. Called at run time only."""
    home = os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow")
    return "file://" + os.path.abspath(os.path.join(home, "codat-data"))


def _as_uri(destination: str) -> str:
    """Accept a plain local path as well as a storage URI."""
    destination = destination.strip()
    if destination.startswith("/"):
        return "file://" + destination
    return destination


def resolve_destination(explicit: str | None = None) -> str:
    """The destination URI a run writes to: ``explicit``, else the ``codat_destination`` Variable, else
    :func:`default_destination`. Call it in a task, never at parse time (it reads a Variable)."""
    if explicit:
        return _as_uri(str(explicit))
    from airflow.sdk import Variable

    return _as_uri(Variable.get(DESTINATION_VARIABLE, default=None) or default_destination())


def _max_map_length() -> int:
    from airflow.sdk.configuration import conf

    return conf.getint("core", "max_map_length", fallback=1024)


def _check_map_length(count: int, what: str) -> None:
    """Fail with a message that says what to change, before Airflow fails with a less helpful one."""
    limit = _max_map_length()
    if count > limit:
        raise AirflowException(
            f"{count} {what} is more than Airflow's [core] max_map_length ({limit}). Raise it "
            f"(AIRFLOW__CORE__MAX_MAP_LENGTH={count * 2}) on the scheduler, dag-processor and workers, "
            "or split the companies between DAGs with CodatListCompaniesOperator(tags=...)."
        )


def _as_list(value: Any) -> list:
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return list(value)


# -- the tasks of the group ---------------------------------------------------------------------------------
@task
def targets(companies: Any, data_types: Any, allowed: list[str] | None = None) -> list[dict[str, Any]]:
    """One refresh request per company, for the chosen data types (``allowed``: the group's own types)."""
    company_ids = list(dict.fromkeys(_as_list(companies)))
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
    _check_map_length(len(company_ids), "companies")
    log.info("Syncing %d data types for %d companies: %s", len(types), len(company_ids), ", ".join(types))
    return [{"company_id": company_id, "data_types": types} for company_id in company_ids]


@task(trigger_rule="all_done")
def plan(
    data_type: str,
    requested: list[dict] | None,
    tickets: Iterable[dict] | None,
    outcomes: Iterable[dict] | None,
    destination: str | None = None,
    full_refresh: Any = False,
) -> list[dict[str, Any]]:
    """The extracts of one data type: one per company whose sync of it finished ``Complete``.

    Runs whatever happened upstream: a company whose refresh or wait failed has no outcome here, so it gets
    no extract, and the other companies go on. A type the run did not choose gets none (its extract skips).
    """
    chosen = {t for item in requested or [] for t in item["data_types"]}
    if data_type not in chosen:
        log.info("%s was not chosen for this run.", data_type)
        return []
    ready = []
    for company_id, outcome in _outcomes_by_company(tickets, outcomes).items():
        status = (outcome.get(data_type) or {}).get("status")
        if status == SUCCESS:
            ready.append(company_id)
        elif status == NOT_SUPPORTED:
            log.info("%s: %s is not supported by its platform; nothing to extract.", company_id, data_type)
    resolved = resolve_destination(destination)
    full = str(full_refresh).strip().lower() in {"true", "1", "yes", "on"}
    _check_map_length(len(ready), f"{data_type} extracts")
    log.info("%s: %d companies to extract to %s", data_type, len(ready), resolved)
    return [
        {"company_id": company_id, "data_type": data_type, "destination": resolved, "full_refresh": full}
        for company_id in ready
    ]


def _flatten(groups: Iterable[Iterable[dict] | None] | None) -> list[dict]:
    return [item for group in groups or [] for item in group or []]


@task(trigger_rule="all_done")
def summary(
    requested: list[dict] | None,
    tickets: Iterable[dict] | None,
    outcomes: Iterable[dict] | None,
    extracts: list[list[dict] | None],
    results: list[Iterable[dict] | None],
) -> dict[str, Any]:
    """Totals per data type, and a failure naming every company that did not land all its data.

    :param extracts: each data type's planned extracts.
    :param results: each data type's extract results.
    """
    if requested is None:
        raise AirflowException("The companies and data types could not be worked out: see the task before.")
    tickets = list(tickets or [])
    refreshed = {ticket["company_id"] for ticket in tickets}
    waited = _outcomes_by_company(tickets, outcomes)
    planned_pairs = _flatten(extracts)
    planned = {(pair["company_id"], pair["data_type"]) for pair in planned_pairs}
    by_type: dict[str, dict[str, int]] = {}
    done: set[tuple[str, str]] = set()
    for result in _flatten(results):
        done.add((result["company_id"], result["data_type"]))
        totals = by_type.setdefault(result["data_type"], {"companies": 0, "records": 0, "deleted": 0})
        totals["companies"] += 1
        totals["records"] += int(result.get("records") or 0)
        totals["deleted"] += int(result.get("deleted") or 0)
    failed: dict[str, str] = {}
    for item in requested:
        company_id = item["company_id"]
        if company_id not in refreshed:
            failed[company_id] = "refresh failed"
        elif company_id not in waited:
            failed[company_id] = "sync failed or timed out (wait)"
        else:
            missing = sorted(t for c, t in planned - done if c == company_id)
            if missing:
                failed[company_id] = "extract failed: " + ", ".join(missing)
    for data_type, totals in sorted(by_type.items()):
        log.info(
            "%-24s %4d companies %8d records %6d deleted",
            data_type,
            totals["companies"],
            totals["records"],
            totals["deleted"],
        )
    report = {
        "companies": len(requested),
        "companies_ok": [item["company_id"] for item in requested if item["company_id"] not in failed],
        "destination": next((pair["destination"] for pair in planned_pairs), None),
        "syncs_complete": sum(
            1 for outcome in waited.values() for r in outcome.values() if r.get("status") == SUCCESS
        ),
        "by_type": by_type,
        "failed": failed,
    }
    if failed:
        lines = "; ".join(f"{company_id}: {reason}" for company_id, reason in sorted(failed.items()))
        raise AirflowException(
            f"{len(failed)} of {len(requested)} companies did not land all their data ({lines}). The failed "
            "mapped tasks (labelled with the company id) carry Codat's message; the other companies' data "
            "was written."
        )
    return report


def _outcomes_by_company(tickets: Iterable[dict] | None, outcomes: Iterable[dict] | None) -> dict[str, dict]:
    """Pair each sensor outcome with its company: outcomes name datasets, tickets say whose they are.

    Mapped outputs hold only the tasks that succeeded, so their positions cannot be matched; ids can.
    """
    company_of: dict[str, str] = {}
    for ticket in tickets or []:
        for dataset_id in (ticket.get("datasets") or {}).values():
            company_of[dataset_id] = ticket["company_id"]
    paired: dict[str, dict] = {}
    for outcome in outcomes or []:
        for result in outcome.values():
            company_id = company_of.get(result.get("dataset_id"))
            if company_id is not None:
                paired.setdefault(company_id, {}).update(outcome)
                break
    return paired


@task(multiple_outputs=True)
def select(listed: list[str] | None) -> dict[str, Any]:
    """Read the run's Params: the companies (empty: every linked company listed), types and destination."""
    params = get_current_context()["params"]
    given = _as_list(params.get("company_ids"))
    listed = list(listed or [])
    if given:
        unlinked = [company_id for company_id in given if company_id not in set(listed)]
        if unlinked:
            log.warning("Not listed as Linked, their syncs will likely fail: %s", ", ".join(unlinked))
    company_ids = given or listed
    return {
        "company_ids": company_ids,
        "data_types": _as_list(params.get("data_types")),
        "full_refresh": bool(params.get("full_refresh")),
        "destination": resolve_destination(params.get("destination")),
    }


@task(trigger_rule="all_done")
def relink_report(codat_conn_id: str = "codat_default") -> list[dict[str, Any]]:
    """List the companies whose connection is Deauthorized, Unlinked or PendingAuth: they must re-link."""
    from airflow_provider_codat.hooks.codat import CodatHook

    hook = CodatHook(codat_conn_id=codat_conn_id)
    report = []
    for company in hook.list_companies():
        for connection in company.get("dataConnections") or []:
            if connection.get("status") in RELINK_STATUSES:
                report.append(
                    {
                        "company_id": company["id"],
                        "company_name": company.get("name"),
                        "connection_id": connection.get("id"),
                        "platform": connection.get("platformName"),
                        "status": connection.get("status"),
                        "link_url": connection.get("linkUrl"),
                        "portal_url": hook.portal_url(company["id"]),
                    }
                )
    if report:
        log.warning("%d connections need re-linking:", len(report))
        for row in report:
            log.warning(
                "  %s (%s): %s connection %s is %s; re-link at %s",
                row["company_name"],
                row["company_id"],
                row["platform"],
                row["connection_id"],
                row["status"],
                row["link_url"] or row["portal_url"],
            )
    else:
        log.info("Every connection is Linked.")
    return report
