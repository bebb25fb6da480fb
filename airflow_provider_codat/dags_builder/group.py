"""The reusable group: ``batches`` → ``sync`` (one task per company) → ``summary``, in your own DAG in one call.

``batches`` decides who, and how many per task (past Airflow's ``max_map_length`` each task takes a batch of
companies); ``sync`` is one :class:`~airflow_provider_codat.operators.company.CodatCompanySyncOperator` per
company, labelled with its name; ``summary`` totals the run; ``tables`` (unless ``tables=False``) merges what
every company landed into each data type's current-state table, one commit per type (docs/tables.md). A company
whose refresh, sync or extract fails fails its own task and the ``summary``, naming the data types and Codat's
message; the others are committed.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import TaskGroup

from airflow_provider_codat.assets import codat_assets, table_assets
from airflow_provider_codat.company_progress import check_refresh
from airflow_provider_codat.dags_builder.tasks import batches, summary
from airflow_provider_codat.datatypes import get_data_type
from airflow_provider_codat.defaults import DEFAULT_CONN_ID
from airflow_provider_codat.extract.company_reconcile import reconcile_choice
from airflow_provider_codat.extract.concurrent_types import DEFAULT_MAX_CONCURRENCY
from airflow_provider_codat.operators.company import CodatCompanySyncOperator
from airflow_provider_codat.operators.tables import CodatMergeTablesOperator

# Demos and tests against the simulator, whose syncs take seconds, shorten the first wait with this.
POKE_INTERVAL_ENV = "CODAT_SYNC_POKE_INTERVAL"


# The former names of the wait's settings (before the operators' names were taken everywhere).
RENAMED_WAIT_SETTINGS = {
    "poke_interval": "poll_interval",
    "max_poke_interval": "max_poll_interval",
    "sync_timeout": "timeout",
}


def current_wait_settings(
    settings: dict[str, Any], former: dict[str, Any], *, stacklevel: int = 3
) -> dict[str, Any]:
    """``settings`` with each value given under a former name in place of the new name's, with a
    :class:`DeprecationWarning`.

    :param settings: the wait's settings under their names (the values of :data:`RENAMED_WAIT_SETTINGS`).
    :param former: what the caller passed under the former names; ``None`` for a name not given.
    :param stacklevel: the frame the warning names: by default the caller of this function's caller.
    :raises TypeError: a name in ``former`` that is no former name (a typo, as Python would refuse it).
    """
    current = dict(settings)
    for old, value in former.items():
        if old not in RENAMED_WAIT_SETTINGS:
            raise TypeError(f"unexpected keyword argument {old!r}")
        if value is not None:
            _warn_renamed(old, stacklevel)
            current[RENAMED_WAIT_SETTINGS[old]] = value
    return current


class FormerName:
    """A former name of a wait setting, kept readable on a dataclass: read on an instance it warns and gives the
    setting under its new name; read by the dataclass machinery it is ``None``, so that the same name still
    works as an ``InitVar`` given at construction."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.old = name

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        # The dataclass reads it for the InitVar's default, and dataclasses.replace to copy the InitVar: None
        # there, or a copy would take the old value back over the new name's.
        if instance is None or sys._getframe(1).f_globals.get("__name__") == "dataclasses":
            return None
        _warn_renamed(self.old, 2)
        return getattr(instance, RENAMED_WAIT_SETTINGS[self.old])


def _warn_renamed(old: str, stacklevel: int) -> None:
    # stacklevel counts from the function that calls this one (1), as warnings.warn counts from its caller
    warnings.warn(
        f"{old} is deprecated: use {RENAMED_WAIT_SETTINGS[old]} (the same setting).",
        DeprecationWarning,
        stacklevel=stacklevel + 1,
    )


def check_data_types(data_types: Sequence[str]) -> list[str]:
    """The keys, each once in their order; a key the catalogue lacks fails (at parse time), naming the valid
    keys.

    :param data_types: Codat data type keys.
    """
    types = list(dict.fromkeys(data_types))
    for key in types:
        get_data_type(key)
    return types


def _sync_kwargs(
    types: list[str],
    refresh: str,
    codat_conn_id: str,
    max_concurrency: int,
    pool: str | None,
    page_size: int | None,
    reconcile: list[str],
) -> dict[str, Any]:
    """What every mapped sync task shares, but the wait's timing (see :func:`_wait_kwargs`); a ``refresh`` that
    is no refresh mode fails here, at parse time."""
    check_refresh(refresh)
    kwargs: dict[str, Any] = {
        "reconcile": reconcile,
        "task_id": "sync",
        "outlets": codat_assets(types),
        "refresh": refresh,
        "codat_conn_id": codat_conn_id,
        "deferrable": True,
        "max_concurrency": max_concurrency,
        "map_index_template": "{{ task.company_name }}",
    }
    if page_size:
        kwargs["page_size"] = page_size
    if pool:
        kwargs["pool"] = pool
    return kwargs


def _wait_kwargs(
    poll_interval: float, max_poll_interval: float, timeout: timedelta, former: dict[str, Any]
) -> dict[str, Any]:
    """The deferred wait's timing, a value given under a former name taking the place of the new name's;
    ``CODAT_SYNC_POKE_INTERVAL`` overrides the first interval."""
    settings = {"poll_interval": poll_interval, "max_poll_interval": max_poll_interval, "timeout": timeout}
    wait = current_wait_settings(settings, former, stacklevel=4)  # the warning names the group's caller
    override = os.environ.get(POKE_INTERVAL_ENV)  # an environment read: no I/O at parse time
    if override:
        wait["poll_interval"] = float(override)
    return wait


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
    poll_interval: float = 30,
    max_poll_interval: float = 600,
    timeout: timedelta = timedelta(hours=6),
    pool: str | None = None,
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
    page_size: int | None = None,
    tables: bool = True,
    tables_path: Any = None,
    keep_deleted: bool = False,
    reconcile: bool | Sequence[str] = False,
    **former: Any,
) -> TaskGroup:
    """Refresh, wait for exactly those syncs, and extract what changed: one task per company (call it inside a
    DAG; the tasks are described in this module's docstring).

    :param companies: Codat company ids, or ``{id, name}`` dicts: a list or an upstream task's output.
    :param data_types: the Codat data type keys the group can sync, e.g. ``["invoices", "payments"]``.
    :param chosen_types: the subset to sync in a run (a list, template or task output); all when ``None``.
    :param refresh: ``"queue"`` (each type), ``"all"`` (``data/all``) or ``"none"`` (what Codat already has).
    :param destination: a storage URI or local path (value, template or task output); ``None``: the
        ``codat_destination`` Variable at run time, else ``$AIRFLOW_HOME/codat-data``.
    :param full_refresh: ignore the saved watermarks and read everything again.
    :param group_id: the task group's id.
    :param codat_conn_id: the Airflow connection to Codat.
    :param poll_interval: seconds before the wait's second look, doubling up to ``max_poll_interval``
        (the environment's ``CODAT_SYNC_POKE_INTERVAL`` wins: demos against the simulator).
    :param max_poll_interval: the longest interval between two looks at a sync.
    :param timeout: how long to wait for the syncs before failing.
    :param pool: an Airflow pool bounding the companies worked on at once, across DAGs (docs/dags.md).
    :param max_concurrency: data types of one company read at once (Codat: 10 concurrent requests a company).
    :param page_size: records per request for the extract (the operator's default when ``None``).
    :param tables: end with ``tables``: merge the run into each type's current-state Delta table.
    :param tables_path: the tables' folder (URI); ``None``: ``{destination}/_tables``.
    :param keep_deleted: keep deleted records in the tables as rows flagged ``_codat_deleted``.
    :param reconcile: reconcile these types after each company's extract (``True``: every type that needs it;
        :class:`~airflow_provider_codat.operators.company.CodatCompanySyncOperator`). Default off.
    :param former: the deprecated names ``poke_interval``, ``max_poke_interval`` and ``sync_timeout`` (a warning).
    """
    wait = _wait_kwargs(poll_interval, max_poll_interval, timeout, former)
    types = check_data_types(data_types)
    reconciled = reconcile_choice(reconcile, types, strict=True)  # a wrong type fails at parse time
    shared = _sync_kwargs(types, refresh, codat_conn_id, max_concurrency, pool, page_size, reconciled)
    with TaskGroup(group_id=group_id, tooltip="one task per company: refresh → wait → extract") as group:
        chosen = types if chosen_types is None else chosen_types
        work = batches(companies, chosen, types, destination, full_refresh, codat_conn_id, reconciled)
        synced = CodatCompanySyncOperator.partial(**shared, **wait).expand_kwargs(work)
        summary(work, synced.output)
        if tables:
            synced >> _merge_tables_task(types, chosen, work, tables_path, keep_deleted)
    return group


def _merge_tables_task(
    types: list[str], chosen: Any, work: Any, tables_path: Any, keep_deleted: bool
) -> CodatMergeTablesOperator:
    """The group's ``tables`` task; ``all_done``, so the companies that landed are merged when another failed."""
    return CodatMergeTablesOperator(
        task_id="tables",
        data_types=chosen,
        companies=work,
        tables=tables_path,
        keep_deleted=keep_deleted,
        outlets=table_assets(types),
        trigger_rule="all_done",
    )


def sync_task(group: TaskGroup) -> Any:
    """The group's mapped sync task (to hang tasks after it)."""
    return group.children[f"{group.group_id}.sync"]


def tables_task(group: TaskGroup) -> Any:
    """The group's ``tables`` task (``None`` when the group writes no tables)."""
    return group.children.get(f"{group.group_id}.tables")


def summary_output(group: TaskGroup) -> Any:
    """The XCom of a sync group's ``summary`` task: ``{companies, companies_ok, destination, by_type, ...}``,
    for tasks that build on the landed data (they run only when every company landed its data)."""
    return group.children[f"{group.group_id}.summary"].output
