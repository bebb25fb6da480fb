"""Build Codat sync DAGs: list companies → one task per company (refresh, wait, extract every type) → summary.

Two entry points:

* :func:`codat_sync_task_group` drops the per-company sync for your own data types into your own DAG in one
  call;
* :func:`build_sync_dag` turns one row of a declarative table (:class:`SyncSpec`) into a whole DAG with
  Params for the UI's trigger form. ``dags/codat_sync.py`` is that table and a loop.

Each company is one task instance of :class:`~airflow_provider_codat.operators.company.CodatCompanySyncOperator`,
labelled with the company's name; past Airflow's ``max_map_length`` each task takes a batch of companies, decided
at run time. Nothing here reads a Variable or a Connection, or talks to Codat, at parse time.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, Param, TaskGroup

from airflow_provider_codat.dag_tasks import batches, portfolio, relink_report, summary
from airflow_provider_codat.datatypes import get_data_type
from airflow_provider_codat.defaults import DEFAULT_CONN_ID
from airflow_provider_codat.extract.company import DEFAULT_MAX_CONCURRENCY
from airflow_provider_codat.extract.destination import (
    DESTINATION_VARIABLE,
    default_destination,
    resolve_destination,
)
from airflow_provider_codat.operators.company import CodatCompanySyncOperator
from airflow_provider_codat.safe_repr import shorten

__all__ = [
    "DESTINATION_VARIABLE",
    "POKE_INTERVAL_ENV",
    "START_DATE",
    "SyncSpec",
    "build_sync_dag",
    "codat_sync_task_group",
    "company_ids_param",
    "default_destination",
    "codat_assets",
    "sync_task",
    "resolve_destination",
    "summary_output",
]

# Demos and tests against the simulator, whose syncs take seconds, shorten the first wait with this.
POKE_INTERVAL_ENV = "CODAT_SYNC_POKE_INTERVAL"
# Tasks of one DAG running at once. Each works for its own company (within Codat's 10 concurrent requests per
# company) and frees its slot while Codat syncs; Codat's per-IP limits are bounded by a pool (docs/dags.md).
DEFAULT_MAX_ACTIVE = 16
# The DAGs' start_date: long past on any clock these DAGs meet (one in the future schedules nothing until it
# comes; a test clock may be set to 2024). catchup=False, so no run is made for the intervals since.
START_DATE = pendulum.datetime(2020, 1, 1, tz="UTC")


# -- the group ----------------------------------------------------------------------------------------------
def codat_assets(data_types: Sequence[str]) -> list[Asset]:
    """The Assets ``codat://{data_type}`` the sync tasks update (the Assets page lists them)."""
    return [Asset(f"codat://{key}") for key in data_types]


def codat_sync_task_group(
    *,
    companies: Any,
    data_types: Sequence[str],
    chosen_types: Any = None,
    refresh: str = "queue",
    destination: Any = None,
    full_refresh: Any = False,
    group_id: str = "codat_sync",
    codat_conn_id: str = DEFAULT_CONN_ID,
    poke_interval: float = 30,
    max_poke_interval: float = 600,
    sync_timeout: timedelta = timedelta(hours=6),
    pool: str | None = None,
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
    page_size: int | None = None,
) -> TaskGroup:
    """Refresh, wait for exactly those syncs, and extract what changed: one task per company.

    Call it inside a DAG. The tasks: ``batches`` (who, and how many per task) → ``sync`` (mapped, one
    :class:`~airflow_provider_codat.operators.company.CodatCompanySyncOperator` per company, labelled with its
    name) → ``summary``. A company whose refresh, sync or extract fails fails its own task, naming the data types
    and Codat's message, and the ``summary``; every other company and type is committed. Past Airflow's
    ``max_map_length`` (1,024 by default) each task takes a batch of companies, so 10,000 companies need no
    configuration change.

    :param companies: Codat company ids, or ``{id, name}`` dicts: a list or an upstream task's output.
    :param data_types: the Codat data type keys the group can sync, e.g. ``["invoices", "payments"]``.
    :param chosen_types: the subset to sync in a run (a list, template or task output); all when ``None``.
    :param refresh: ``"queue"`` queues each type; ``"all"`` calls ``data/all``, which queues every
        fetch-on-first-link type; ``"none"`` extracts what Codat already has.
    :param destination: a storage URI or local path (value, template or task output); ``None`` reads the
        ``codat_destination`` Variable at run time, else ``$AIRFLOW_HOME/codat-data``.
    :param full_refresh: ignore the saved watermarks and read everything again.
    :param group_id: the task group's id.
    :param codat_conn_id: the Airflow connection to Codat.
    :param poke_interval: seconds before the wait's second look; it doubles up to ``max_poke_interval``.
        The ``CODAT_SYNC_POKE_INTERVAL`` environment variable overrides it (demos and tests against the
        simulator, whose syncs take seconds).
    :param max_poke_interval: the longest interval between two looks at a sync.
    :param sync_timeout: how long to wait for the syncs before failing.
    :param pool: an Airflow pool bounding how many companies are worked on at once, across DAGs (see
        ``docs/dags.md`` for sizing it from Codat's limits).
    :param max_concurrency: data types of one company read at once (Codat serves 10 concurrent requests per
        company).
    :param page_size: records per request for the extract (the operator's default when ``None``).
    """
    if refresh not in ("queue", "all", "none"):
        raise ValueError(f"refresh must be 'queue', 'all' or 'none', got {shorten(refresh)}.")
    types = list(dict.fromkeys(data_types))
    for key in types:
        get_data_type(key)  # a typo fails at parse time, naming the valid keys
    extra: dict[str, Any] = {"page_size": page_size} if page_size else {}
    if pool:
        extra["pool"] = pool
    override = os.environ.get(POKE_INTERVAL_ENV)  # an environment read: no I/O at parse time
    if override:
        poke_interval = float(override)

    with TaskGroup(group_id=group_id, tooltip="one task per company: refresh → wait → extract") as group:
        work = batches(
            companies,
            types if chosen_types is None else chosen_types,
            types,
            destination,
            full_refresh,
            codat_conn_id,
        )
        synced = CodatCompanySyncOperator.partial(
            task_id="sync",
            refresh=refresh,
            codat_conn_id=codat_conn_id,
            deferrable=True,
            poll_interval=poke_interval,
            max_poll_interval=max_poke_interval,
            timeout=sync_timeout,
            max_concurrency=max_concurrency,
            map_index_template="{{ task.company_name }}",
            outlets=codat_assets(types),
            **extra,
        ).expand_kwargs(work)
        summary(work, synced.output)
    return group


def sync_task(group: TaskGroup) -> Any:
    """The group's mapped sync task (to hang tasks after it)."""
    return group.children[f"{group.group_id}.sync"]


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
    :param max_active_tasks: tasks of the DAG running at once (companies being refreshed or extracted;
        companies waiting for Codat are deferred and do not count).
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
    max_active_tasks: int = DEFAULT_MAX_ACTIVE
    pool: str | None = None
    poke_interval: float = 30
    max_poke_interval: float = 600

    def __post_init__(self) -> None:
        for key in self.data_types:
            get_data_type(key)  # a typo in the table fails the import, naming the valid keys
        if self.refresh not in ("queue", "all", "none"):
            raise ValueError(
                f"{self.dag_id}: refresh must be 'queue', 'all' or 'none', got {shorten(self.refresh)}."
            )


def company_ids_param(description: str) -> Param:
    """The trigger form's ``company_ids`` Param: a list of Codat company ids, empty by default.

    Its schema admits null: the trigger form treats a Param whose schema does not as required, and "empty"
    (every company) would then be refused.

    :param description: the form's help text (what an empty list means in this DAG).
    """
    return Param(
        None, type=["null", "array"], items={"type": "string"}, title="Company ids", description=description
    )


def build_sync_dag(spec: SyncSpec, *, codat_conn_id: str = DEFAULT_CONN_ID) -> DAG:
    """Build the DAG for one row of the sync table (see ``dags/codat_sync.py``)."""
    types = list(spec.data_types)
    with DAG(
        dag_id=spec.dag_id,
        description=spec.description,
        schedule=spec.schedule,
        start_date=START_DATE,
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
                examples=types,  # the form shows a multi-select of these
                title="Data types",
                description="Codat data types to refresh and extract.",
            ),
            "full_refresh": Param(
                False,
                type="boolean",
                title="Full refresh",
                description="Ignore the saved watermarks: read and write everything again.",
            ),
            "destination": Param(
                None,
                type=["null", "string"],
                title="Destination",
                description=f"A storage URI or local path. Empty: the '{DESTINATION_VARIABLE}' Variable, "
                "else $AIRFLOW_HOME/codat-data.",
            ),
        },
    ) as dag:
        chosen = portfolio(codat_conn_id)
        group = codat_sync_task_group(
            companies=chosen["companies"],
            data_types=types,
            chosen_types=chosen["data_types"],
            refresh=spec.refresh,
            destination=chosen["destination"],
            full_refresh=chosen["full_refresh"],
            codat_conn_id=codat_conn_id,
            poke_interval=spec.poke_interval,
            max_poke_interval=spec.max_poke_interval,
            sync_timeout=spec.sync_timeout,
            pool=spec.pool,
        )
        if spec.relink_report:
            # A sibling of the summary, not after it: the run still fails when a company failed.
            relink_report(codat_conn_id) << sync_task(group)
    return dag


def _doc(spec: SyncSpec) -> str:
    refresh = {
        "all": "`data/all` (every fetch-on-first-link type)",
        "queue": "`data/queue` per type",
        "none": "nothing (Codat's own schedule)",
    }[spec.refresh]
    lines = [
        f"### {spec.dag_id}",
        spec.description,
        "",
        f"One task per company, labelled with its name: refresh with {refresh} → wait for exactly those "
        "syncs (deferred: no worker slot held) → incremental extract of every type at once → summary. Past "
        "Airflow's max_map_length each task takes a batch of companies.",
        "",
        f"Data types: {', '.join(f'`{key}`' for key in spec.data_types)}.",
        "",
        "Trigger with Params to choose companies, data types, a full refresh or another destination.",
    ]
    if spec.relink_report:
        lines += ["", "Ends with `relink_report`: the companies whose connection needs re-linking."]
    return "\n".join(lines)
