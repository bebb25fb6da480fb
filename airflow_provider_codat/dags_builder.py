"""Build Codat sync DAGs: list companies → refresh → wait → incremental extract, per company × data type.

Two entry points:

* :func:`codat_sync_task_group` drops refresh → wait → extract for your own data types into your own DAG in
  one call;
* :func:`build_sync_dag` turns one row of a declarative table (:class:`SyncSpec`) into a whole DAG with
  Params for the UI's trigger form. ``dags/codat_sync.py`` is that table and a loop.

Nothing here reads a Variable or a Connection, or talks to Codat, at parse time: every run-time value (the
companies, the data types, the destination) is resolved inside a task.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, Param, TaskGroup

from airflow_provider_codat.dag_tasks import (
    DESTINATION_VARIABLE,
    default_destination,
    plan,
    relink_report,
    resolve_destination,
    select,
    summary,
    targets,
)
from airflow_provider_codat.datatypes import get_data_type
from airflow_provider_codat.operators.companies import CodatListCompaniesOperator
from airflow_provider_codat.operators.extract import CodatExtractOperator
from airflow_provider_codat.operators.refresh import CodatQueueDataTypesOperator, CodatRefreshAllDataOperator
from airflow_provider_codat.safe_repr import shorten
from airflow_provider_codat.sensors.sync import CodatSyncSensor

__all__ = [
    "DESTINATION_VARIABLE",
    "POKE_INTERVAL_ENV",
    "SyncSpec",
    "build_sync_dag",
    "codat_sync_task_group",
    "company_ids_param",
    "default_destination",
    "extract_tasks",
    "resolve_destination",
    "summary_output",
]

# Demos and tests against the simulator, whose syncs take seconds, shorten the first wait with this.
POKE_INTERVAL_ENV = "CODAT_SYNC_POKE_INTERVAL"
# Codat allows 10 concurrent requests per company. Each refresh, wait and extract task makes one request at a
# time, so at most 8 running tasks per DAG stay under it even when they all work for the same company.
DEFAULT_MAX_ACTIVE = 8


# -- the group ----------------------------------------------------------------------------------------------
def codat_sync_task_group(
    *,
    companies: Any,
    data_types: Sequence[str],
    chosen_types: Any = None,
    refresh: str = "queue",
    destination: Any = None,
    full_refresh: Any = False,
    group_id: str = "codat_sync",
    codat_conn_id: str = "codat_default",
    poke_interval: float = 30,
    max_poke_interval: float = 600,
    sync_timeout: timedelta = timedelta(hours=6),
    max_active_tis_per_dag: int = DEFAULT_MAX_ACTIVE,
    pool: str | None = None,
    page_size: int | None = None,
) -> TaskGroup:
    """Refresh, wait for exactly those syncs, and extract what changed, for each company and data type.

    Call it inside a DAG. The tasks: ``targets`` → ``refresh`` and ``wait`` (mapped per company) → for each
    data type, ``<type>.plan`` → ``<type>.extract`` (mapped per company, labelled "company type") →
    ``summary``. One extract task per data type keeps each map as long as the number of companies, within
    Airflow's default ``max_map_length`` (1,024) up to 1,024 companies. A company whose refresh or sync fails
    fails its own mapped tasks (labelled with its id) and the ``summary``; the others' extracts still run.

    :param companies: Codat company ids: a list or an upstream task's output (e.g.
        ``CodatListCompaniesOperator(...).output``).
    :param data_types: the Codat data type keys the group can sync, e.g. ``["invoices", "payments"]``.
    :param chosen_types: the subset to sync in a run (a list, template or task output); all when ``None``.
    :param refresh: ``"queue"`` queues each type (``CodatQueueDataTypesOperator``); ``"all"`` calls
        ``data/all`` (``CodatRefreshAllDataOperator``), which queues every fetch-on-first-link type.
    :param destination: a storage URI or local path (value, template or task output); ``None`` reads the
        ``codat_destination`` Variable at run time, else ``$AIRFLOW_HOME/codat-data``.
    :param full_refresh: ignore the saved watermarks and read everything again.
    :param group_id: the task group's id.
    :param codat_conn_id: the Airflow connection to Codat.
    :param poke_interval: seconds before the sensor's second check; it doubles up to ``max_poke_interval``.
        The ``CODAT_SYNC_POKE_INTERVAL`` environment variable overrides it (demos and tests against the
        simulator, whose syncs take seconds).
    :param max_poke_interval: the longest interval between two checks of a sync.
    :param sync_timeout: how long to wait for the syncs before failing.
    :param max_active_tis_per_dag: how many instances of each refresh, wait and extract task run at once.
    :param pool: an Airflow pool shared with other Codat DAGs, to bound concurrency across DAGs.
    :param page_size: records per request for the extract (the operator's default when ``None``).
    """
    if refresh not in ("queue", "all"):
        raise ValueError(f"refresh must be 'queue' or 'all', got {shorten(refresh)}.")
    types = list(dict.fromkeys(data_types))
    for key in types:
        get_data_type(key)  # a typo fails at parse time, naming the valid keys
    limits: dict[str, Any] = {
        "max_active_tis_per_dag": max_active_tis_per_dag,
        "codat_conn_id": codat_conn_id,
    }
    if pool:
        limits["pool"] = pool
    refresh_class = CodatQueueDataTypesOperator if refresh == "queue" else CodatRefreshAllDataOperator
    extract_kwargs: dict[str, Any] = {"page_size": page_size} if page_size else {}
    override = os.environ.get(POKE_INTERVAL_ENV)  # an environment read: no I/O at parse time
    if override:
        poke_interval = float(override)

    with TaskGroup(group_id=group_id, tooltip="refresh → wait → extract, per company") as group:
        requested = targets(companies, types if chosen_types is None else chosen_types, types)
        refreshed = refresh_class.partial(
            task_id="refresh", map_index_template="{{ task.company_id }}", **limits
        ).expand_kwargs(requested)
        waited = CodatSyncSensor.partial(
            task_id="wait",
            deferrable=True,
            poke_interval=poke_interval,
            max_poke_interval=max_poke_interval,
            timeout=sync_timeout.total_seconds(),
            fail_on_error=True,
            # Waits start for every company whose refresh worked, whatever happened to the others.
            trigger_rule="all_done",
            map_index_template="{{ task.ticket['company_id'] }}",
            **limits,
        ).expand(ticket=refreshed.output)
        plans, results = [], []
        for data_type in types:
            with TaskGroup(group_id=data_type, tooltip=f"extract {data_type}, one task per company"):
                planned = plan(
                    data_type, requested, refreshed.output, waited.output, destination, full_refresh
                )
                extracted = CodatExtractOperator.partial(
                    task_id="extract",
                    map_index_template="{{ task.company_id }} {{ task.data_type }}",
                    **limits,
                    **extract_kwargs,
                ).expand_kwargs(planned)
            plans.append(planned)
            results.append(extracted.output)
        summary(requested, refreshed.output, waited.output, plans, results)
    return group


def extract_tasks(group: TaskGroup) -> list:
    """The group's extract tasks, one per data type (to hang tasks after them)."""
    return [
        child.children[f"{child.group_id}.extract"]
        for child in group.children.values()
        if isinstance(child, TaskGroup)
    ]


def summary_output(group: TaskGroup) -> Any:
    """The XCom of a sync group's ``summary`` task: ``{companies, companies_ok, destination, by_type, ...}``,
    for tasks that build on the landed data (they run only when every company landed its data)."""
    return group.children[f"{group.group_id}.summary"].output


# -- whole DAGs from a table --------------------------------------------------------------------------------
@dataclass(frozen=True)
class SyncSpec:
    """One row of the sync table: one DAG.

    :param dag_id: the DAG's id.
    :param schedule: a cron expression or preset (``"@daily"``), or ``None`` for manual runs only.
    :param data_types: the data types it refreshes and extracts (the trigger form can narrow them).
    :param refresh: ``"queue"`` (one ``data/queue`` per type) or ``"all"`` (``data/all``).
    :param description: one line shown in the DAG list.
    :param sync_timeout: how long to wait for Codat's syncs.
    :param relink_report: end with a report of companies whose connection needs re-linking.
    :param tags: extra DAG tags.
    :param max_active_tis_per_dag: see :func:`codat_sync_task_group`.
    :param max_active_tasks: tasks of the DAG running at once, all kinds together. Every task makes one
        request at a time, so this bounds the requests to one company below Codat's 10 (deferred waits
        do not count; each adds at most one request at a time).
    :param pool: see :func:`codat_sync_task_group`.
    :param poke_interval: see :func:`codat_sync_task_group`.
    :param max_poke_interval: see :func:`codat_sync_task_group`.
    """

    dag_id: str
    schedule: str | None
    data_types: Sequence[str]
    refresh: str = "queue"
    description: str = ""
    sync_timeout: timedelta = timedelta(hours=6)
    relink_report: bool = False
    tags: Sequence[str] = field(default_factory=tuple)
    max_active_tis_per_dag: int = DEFAULT_MAX_ACTIVE
    max_active_tasks: int = DEFAULT_MAX_ACTIVE
    pool: str | None = None
    poke_interval: float = 30
    max_poke_interval: float = 600

    def __post_init__(self) -> None:
        for key in self.data_types:
            get_data_type(key)  # a typo in the table fails the import, naming the valid keys
        if self.refresh not in ("queue", "all"):
            raise ValueError(f"{self.dag_id}: refresh must be 'queue' or 'all', got {shorten(self.refresh)}.")


def company_ids_param(description: str) -> Param:
    """The trigger form's ``company_ids`` Param: a list of Codat company ids, empty by default.

    :param description: the form's help text (what an empty list means in this DAG).
    """
    return Param([], type="array", items={"type": "string"}, title="Company ids", description=description)


def build_sync_dag(spec: SyncSpec, *, codat_conn_id: str = "codat_default") -> DAG:
    """Build the DAG for one row of the sync table (see ``dags/codat_sync.py``)."""
    types = list(spec.data_types)
    with DAG(
        dag_id=spec.dag_id,
        description=spec.description,
        schedule=spec.schedule,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        max_active_tasks=spec.max_active_tasks,
        tags=["codat", *spec.tags],
        doc_md=_doc(spec),
        params={
            "company_ids": company_ids_param(
                "Codat company ids, one a line. Empty: every company with a Linked connection."
            ),
            "data_types": Param(
                types,
                type="array",
                items={"type": "string", "enum": types},
                title="Data types",
                description="Codat data type keys to refresh and extract.",
            ),
            "full_refresh": Param(
                False,
                type="boolean",
                title="Full refresh",
                description="Ignore the saved watermarks: read and write everything again.",
            ),
            "destination": Param(
                "",
                type="string",
                title="Destination",
                description=f"A storage URI or local path. Empty: the '{DESTINATION_VARIABLE}' Variable, "
                "else $AIRFLOW_HOME/codat-data.",
            ),
        },
    ) as dag:
        listed = CodatListCompaniesOperator(
            task_id="list_companies", connection_status="Linked", codat_conn_id=codat_conn_id
        )
        chosen = select(listed.output)
        group = codat_sync_task_group(
            companies=chosen["company_ids"],
            data_types=types,
            chosen_types=chosen["data_types"],
            refresh=spec.refresh,
            destination=chosen["destination"],
            full_refresh=chosen["full_refresh"],
            codat_conn_id=codat_conn_id,
            poke_interval=spec.poke_interval,
            max_poke_interval=spec.max_poke_interval,
            sync_timeout=spec.sync_timeout,
            max_active_tis_per_dag=spec.max_active_tis_per_dag,
            pool=spec.pool,
        )
        if spec.relink_report:
            # A sibling of the summary, not after it: the run still fails when a company failed.
            relink_report(codat_conn_id) << extract_tasks(group)
    return dag


def _doc(spec: SyncSpec) -> str:
    refresh = (
        "`data/all` (every fetch-on-first-link type)" if spec.refresh == "all" else "`data/queue` per type"
    )
    lines = [
        f"### {spec.dag_id}",
        spec.description,
        "",
        f"list companies → refresh with {refresh} (one task per company) → wait for exactly those syncs "
        "(deferrable) → incremental extract (one task per company × data type) → summary.",
        "",
        f"Data types: {', '.join(f'`{key}`' for key in spec.data_types)}.",
        "",
        "Trigger with Params to choose companies, data types, a full refresh or another destination.",
    ]
    if spec.relink_report:
        lines += ["", "Ends with `relink_report`: the companies whose connection needs re-linking."]
    return "\n".join(lines)
