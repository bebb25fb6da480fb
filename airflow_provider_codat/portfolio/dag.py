"""The portfolio path's two DAGs, built from the plain functions of this package.

- ``codat_portfolio_changes`` (:func:`build_changes_dag`): scheduled on ``codat://portfolio-changes``; one run
  per window of webhook deliveries: plan (companies in batches) -> extract (one task per batch of companies)
  -> finish (one Delta commit per data type for the whole window, and the window's marks).
- ``codat_portfolio_sweep`` (:func:`build_sweep_dag`): daily; lists companies, reads only those Codat synced
  after what we heard, merges what it read, folds the marks, and compacts the tables the day's windows
  committed to.

No API call or storage access at parse time: everything happens in the tasks.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, Asset, Param, get_current_context, task

from airflow_provider_codat.dags_builder import START_DATE
from airflow_provider_codat.datatypes import DAILY_TYPES, get_data_type
from airflow_provider_codat.defaults import DEFAULT_CONN_ID
from airflow_provider_codat.errors import CodatError
from airflow_provider_codat.portfolio.route import PORTFOLIO_ASSET
from airflow_provider_codat.portfolio.window import DEFAULT_BATCH

log = logging.getLogger(__name__)

# The types Codat syncs daily for a portfolio: the daily sync DAG's (transactional, incremental).
PORTFOLIO_TYPES = DAILY_TYPES
_DESTINATION = Param(
    None,
    type=["null", "string"],
    description="Storage URI or path; empty: the codat_destination Variable, else $AIRFLOW_HOME/codat-data.",
)


def _destination() -> str:
    from airflow_provider_codat.landing.destination import resolve_destination

    context = get_current_context()
    return resolve_destination((context.get("params") or {}).get("destination"))


def _hook(conn_id: str):
    from airflow_provider_codat.hooks.codat import CodatHook

    return CodatHook(codat_conn_id=conn_id)


def _raise_for(summary: dict[str, Any], what: str) -> None:
    if summary["failures"] or summary["failed"]:
        failed = summary["failed"]
        raise CodatError(
            f"{what}: {len(summary['failures'])} merges failed ({'; '.join(summary['failures'][:3])}) and "
            f"{len(failed)} companies had a type that could not be read "
            f"({'; '.join(f'{c}: {t}' for c, t in list(failed.items())[:3])}). Those land in the next sweep."
        )


def build_changes_dag(
    *,
    dag_id: str = "codat_portfolio_changes",
    data_types: Sequence[str] = PORTFOLIO_TYPES,
    batch_size: int = DEFAULT_BATCH,
    codat_conn_id: str = DEFAULT_CONN_ID,
    tables: bool = True,
    max_active_tasks: int = 8,
) -> DAG:
    """The DAG a window of webhook deliveries runs in.

    :param dag_id: the DAG id.
    :param data_types: the catalogue keys the deployment lands (others in the events are ignored).
    :param batch_size: companies per extract task.
    :param codat_conn_id: the Airflow connection to Codat.
    :param tables: merge into the current-state Delta tables (``{destination}/_tables``).
    :param max_active_tasks: extract tasks at once.
    """
    keys = [get_data_type(key).key for key in data_types]
    with DAG(
        dag_id=dag_id,
        description="Read and merge what Codat's webhooks said changed, many companies per window (no polling).",
        schedule=Asset(PORTFOLIO_ASSET),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,  # events arriving meanwhile fold into the next run
        max_active_tasks=max_active_tasks,
        params={"destination": _DESTINATION},
        default_args={"retries": 2, "retry_delay": timedelta(seconds=30)},
        tags=["codat", "webhooks", "portfolio"],
        doc_md=__doc__,
    ) as dag:

        @task
        def plan() -> list[dict[str, Any]]:
            """The window's companies, in batches (one extract task each)."""
            from airflow_provider_codat.portfolio.window import company_batches, window_changes

            context = get_current_context()
            events = context.get("triggering_asset_events") or {}
            extras = [event.extra or {} for sequence in events.values() for event in sequence]
            changes = window_changes(extras, keys)
            destination = _destination()
            log.info("%d portfolio events name %d companies", len(extras), len(changes))
            return [
                {"destination": destination, "companies": batch}
                for batch in company_batches(changes, batch_size)
            ]

        @task
        def extract(item: dict[str, Any]) -> dict[str, Any]:
            """Read one batch's changed types, no dataStatus, no refresh."""
            from airflow_provider_codat.portfolio.window import extract_companies

            context = get_current_context()
            return extract_companies(
                _hook(codat_conn_id),
                item["companies"],
                destination=item["destination"],
                run_id=context["run_id"],
            )

        @task(trigger_rule="all_done")
        def finish(results: list[dict[str, Any] | None]) -> dict[str, Any]:
            """One merge per type for the whole window; the window's marks."""
            from airflow_provider_codat.portfolio.window import finish_window

            context = get_current_context()
            summary = finish_window(
                list(results or []), destination=_destination(), run_id=context["run_id"], tables=tables
            )
            _raise_for(summary, "The window")
            return {"companies": summary["companies"], "merged": sorted(summary["merged"])}

        finish(extract.expand(item=plan()))
    return dag


def build_sweep_dag(
    *,
    dag_id: str = "codat_portfolio_sweep",
    schedule: Any = "@daily",
    data_types: Sequence[str] = PORTFOLIO_TYPES,
    batch_size: int = DEFAULT_BATCH,
    codat_conn_id: str = DEFAULT_CONN_ID,
    tables: bool = True,
    table_maintenance: bool = True,
    max_active_tasks: int = 8,
) -> DAG:
    """The daily sweep for deliveries webhooks missed (``portfolio/sweep.py``).

    :param dag_id: the DAG id.
    :param schedule: when it runs.
    :param data_types: the catalogue keys the deployment lands.
    :param batch_size: suspect companies per task.
    :param codat_conn_id: the Airflow connection to Codat.
    :param tables: merge what it lands into the current-state tables.
    :param table_maintenance: then compact and vacuum every table (``tables/maintenance.py``): a day of
        windows adds a commit and small files per type and window, which each later merge would read.
    :param max_active_tasks: tasks at once.
    """
    keys = [get_data_type(key).key for key in data_types]
    with DAG(
        dag_id=dag_id,
        description="Find and read what Codat synced but no webhook announced (the portfolio path's sweep).",
        schedule=schedule,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        max_active_tasks=max_active_tasks,
        params={"destination": _DESTINATION},
        default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
        tags=["codat", "portfolio"],
        doc_md=__doc__,
    ) as dag:

        @task
        def sweep_plan() -> list[dict[str, Any]]:
            """Companies Codat synced after what we heard, in batches."""
            from airflow_provider_codat.portfolio.marks import read_marks
            from airflow_provider_codat.portfolio.sweep import suspect_companies
            from airflow_provider_codat.portfolio.window import PAGE_SIZE, company_batches

            destination = _destination()
            companies = list(_hook(codat_conn_id).list_companies(page_size=PAGE_SIZE))
            marks, _ = read_marks(destination)
            suspects = suspect_companies(companies, marks, keys)
            log.info("Sweep: %d of %d companies synced after their marks", len(suspects), len(companies))
            return [
                {"destination": destination, "companies": batch}
                for batch in company_batches(suspects, batch_size)
            ]

        @task
        def sweep_extract(item: dict[str, Any]) -> dict[str, Any]:
            """Read every type of each suspect company from its watermark (no dataStatus, no refresh)."""
            from airflow_provider_codat.portfolio.sweep import sweep_companies

            context = get_current_context()
            return sweep_companies(
                _hook(codat_conn_id),
                item["companies"],
                keys,
                destination=item["destination"],
                run_id=context["run_id"],
            )

        @task(trigger_rule="all_done")
        def sweep_finish(results: list[dict[str, Any] | None]) -> dict[str, Any]:
            """Merge the catch-ups (one commit per type) and fold every mark into one file."""
            from airflow_provider_codat.portfolio.marks import fold_marks
            from airflow_provider_codat.portfolio.window import finish_window

            context = get_current_context()
            destination = _destination()
            summary = finish_window(
                list(results or []), destination=destination, run_id=context["run_id"], tables=tables
            )
            fold_marks(destination)
            if tables and table_maintenance:
                from airflow_provider_codat.landing.destination import destination_path
                from airflow_provider_codat.tables.location import tables_root
                from airflow_provider_codat.tables.maintenance import maintain_tables

                maintain_tables(tables_root(destination_path(destination)))
            _raise_for(summary, "The sweep")
            return {"companies": summary["companies"], "merged": sorted(summary["merged"])}

        sweep_finish(sweep_extract.expand(item=sweep_plan()))
    return dag
