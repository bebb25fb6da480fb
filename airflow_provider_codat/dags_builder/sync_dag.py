"""Whole DAGs from a table: one :class:`SyncSpec` row → one DAG with Params for the UI's trigger form.

``dags/codat_sync.py`` is that table and a loop. Nothing here reads a Variable or a Connection, or talks to
Codat, at parse time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import InitVar, dataclass, field
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, Param

from airflow_provider_codat.dags_builder.group import (
    RENAMED_WAIT_SETTINGS,
    FormerName,
    check_data_types,
    check_refresh,
    codat_sync_task_group,
    current_wait_settings,
    sync_task,
    tables_task,
)
from airflow_provider_codat.dags_builder.tasks import portfolio, relink_report, table_maintenance
from airflow_provider_codat.defaults import DEFAULT_CONN_ID
from airflow_provider_codat.errors import CodatValidationError
from airflow_provider_codat.extract.company_reconcile import reconcile_choice
from airflow_provider_codat.landing.destination import DESTINATION_VARIABLE

# Tasks of one DAG running at once. Each works for its own company (within Codat's 10 concurrent requests per
# company) and frees its slot while Codat syncs; Codat's per-IP limits are bounded by a pool (docs/dags.md).
DEFAULT_MAX_ACTIVE = 16
# The DAGs' start_date: long past on any clock these DAGs meet (one in the future schedules nothing until it
# comes; a test clock may be set to 2024). catchup=False, so no run is made for the intervals since.
START_DATE = pendulum.datetime(2020, 1, 1, tz="UTC")


@dataclass(frozen=True)
class SyncSpec:
    """One row of the sync table: one DAG.

    :param dag_id: the DAG's id.
    :param schedule: a cron expression or preset (``"@daily"``), or ``None`` for manual runs only.
    :param data_types: the data types it refreshes and extracts (the trigger form can narrow them).
    :param refresh: ``"queue"`` (one ``data/queue`` per type) or ``"all"`` (``data/all``).
    :param description: one line shown in the DAG list.
    :param timeout: how long to wait for Codat's syncs.
    :param relink_report: end with a report of companies whose connection needs re-linking.
    :param tags: extra DAG tags.
    :param max_active_tasks: tasks of the DAG running at once (companies being refreshed or extracted;
        companies waiting for Codat are deferred and do not count).
    :param pool: see :func:`codat_sync_task_group`.
    :param poll_interval: see :func:`codat_sync_task_group`.
    :param max_poll_interval: see :func:`codat_sync_task_group`.
    :param tables: merge each run into the data types' current-state Delta tables (docs/tables.md).
    :param keep_deleted: keep deleted records in the tables, flagged ``_codat_deleted``.
    :param table_maintenance: end with ``table_maintenance``: compact, cluster and vacuum every table.
    :param table_retention: how long ``table_maintenance`` keeps files older table versions need.
    :param reconcile: after each company's extract, reconcile these types (``True``: every type of the row
        that needs it: incremental, without Codat's deleted flag): a full read of each scope lands a tombstone
        for each record Codat dropped without a trace (docs/extract.md#reconcile). Default off.
    :param poke_interval: deprecated name of ``poll_interval`` (given or read: a warning).
    :param max_poke_interval: deprecated name of ``max_poll_interval`` (given or read: a warning).
    :param sync_timeout: deprecated name of ``timeout`` (given or read: a warning).
    """

    dag_id: str
    schedule: str | None
    data_types: Sequence[str]
    refresh: str = "queue"
    description: str = ""
    timeout: timedelta = timedelta(hours=6)
    relink_report: bool = False
    tags: Sequence[str] = field(default_factory=tuple)
    max_active_tasks: int = DEFAULT_MAX_ACTIVE
    pool: str | None = None
    poll_interval: float = 30
    max_poll_interval: float = 600
    tables: bool = True
    keep_deleted: bool = False
    table_maintenance: bool = False
    table_retention: timedelta = timedelta(days=7)
    reconcile: bool | Sequence[str] = False
    poke_interval: InitVar[float | None] = FormerName()
    max_poke_interval: InitVar[float | None] = FormerName()
    sync_timeout: InitVar[timedelta | None] = FormerName()

    def __post_init__(
        self, poke_interval: float | None, max_poke_interval: float | None, sync_timeout: timedelta | None
    ) -> None:
        given = {new: getattr(self, new) for new in RENAMED_WAIT_SETTINGS.values()}
        former = {
            "poke_interval": poke_interval,
            "max_poke_interval": max_poke_interval,
            "sync_timeout": sync_timeout,
        }
        for new, value in current_wait_settings(given, former, stacklevel=4).items():
            object.__setattr__(self, new, value)
        check_data_types(self.data_types)  # a typo in the table fails the import, naming the valid keys
        check_refresh(self.refresh, self.dag_id)
        try:
            reconcile_choice(self.reconcile, list(self.data_types), strict=True)
        except CodatValidationError as exc:
            raise ValueError(f"{self.dag_id}: {exc}") from None

    @property
    def reconcile_types(self) -> list[str]:
        """The row's types that each run reconciles."""
        return reconcile_choice(self.reconcile, list(self.data_types))


def company_ids_param(description: str) -> Param:
    """The trigger form's ``company_ids`` Param: a list of Codat company ids, empty by default.

    Its schema admits null: the trigger form treats a Param whose schema does not as required, and "empty"
    (every company) would then be refused.

    :param description: the form's help text (what an empty list means in this DAG).
    """
    return Param(
        None, type=["null", "array"], items={"type": "string"}, title="Company ids", description=description
    )


def trigger_params(data_types: list[str]) -> dict[str, Param]:
    """The Params of a sync DAG's trigger form: ``company_ids``, ``data_types`` (a multi-select of the row's
    types), ``full_refresh`` and ``destination``; each has a default or admits null, so *Trigger* works as is.

    :param data_types: the row's data types (the default, and the choices).
    """
    return {
        "company_ids": company_ids_param(
            "Codat company ids, one a line. Empty: every company with a Linked connection."
        ),
        "data_types": Param(
            data_types,
            type="array",
            items={"type": "string", "enum": data_types},
            examples=data_types,  # the form shows a multi-select of these
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
    }


def _sync_group(spec: SyncSpec, data_types: list[str], chosen: Any, codat_conn_id: str) -> Any:
    """The row's sync group, fed by the ``portfolio`` task's outputs (``chosen``)."""
    return codat_sync_task_group(
        companies=chosen["companies"],
        data_types=data_types,
        chosen_types=chosen["data_types"],
        refresh=spec.refresh,
        destination=chosen["destination"],
        full_refresh=chosen["full_refresh"],
        codat_conn_id=codat_conn_id,
        poll_interval=spec.poll_interval,
        max_poll_interval=spec.max_poll_interval,
        timeout=spec.timeout,
        pool=spec.pool,
        tables=spec.tables,
        keep_deleted=spec.keep_deleted,
        reconcile=spec.reconcile_types,
    )


def build_sync_dag(spec: SyncSpec, *, codat_conn_id: str = DEFAULT_CONN_ID) -> DAG:
    """Build the DAG for one row of the sync table (see ``dags/codat_sync.py``): ``portfolio`` → the sync group
    (→ ``relink_report`` when the row asks for it).

    :param spec: the row.
    :param codat_conn_id: the Airflow connection to Codat.
    """
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
        params=trigger_params(types),
    ) as dag:
        chosen = portfolio(codat_conn_id)
        group = _sync_group(spec, types, chosen, codat_conn_id)
        if spec.table_maintenance:
            hours = spec.table_retention.total_seconds() / 3600
            upstream = tables_task(group) or sync_task(group)
            table_maintenance(chosen["destination"], retention_hours=hours) << upstream
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
    if spec.tables:
        lines += [
            "",
            "`codat_sync.tables` merges the run into each type's current-state Delta table "
            "(`{destination}/_tables/{type}`, docs/tables.md): one commit per type.",
        ]
    if spec.reconcile_types:
        lines += [
            "",
            "After each company's extract, a full read reconciles "
            f"{', '.join(f'`{key}`' for key in spec.reconcile_types)}: a record Codat dropped without a "
            "deleted flag gets a tombstone (docs/extract.md#reconcile).",
        ]
    if spec.table_maintenance:
        lines += [
            "",
            f"`table_maintenance` compacts, clusters and vacuums every table (retention "
            f"{spec.table_retention}).",
        ]
    if spec.relink_report:
        lines += ["", "Ends with `relink_report`: the companies whose connection needs re-linking."]
    return "\n".join(lines)
