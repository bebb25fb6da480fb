"""Build Codat sync DAGs: list companies → one task per company (refresh, wait, extract every type) → summary.

Two entry points:

* :func:`codat_sync_task_group` drops the per-company sync for your own data types into your own DAG in one
  call;
* :func:`build_sync_dag` turns one row of a declarative table (:class:`SyncSpec`) into a whole DAG with
  Params for the UI's trigger form. ``dags/codat_sync.py`` is that table and a loop.

Each company is one task instance of :class:`~airflow_provider_codat.operators.company.CodatCompanySyncOperator`,
labelled with the company's name; past Airflow's ``max_map_length`` each task takes a batch of companies, decided
at run time. Nothing here reads a Variable or a Connection, or talks to Codat, at parse time.

Modules: :mod:`.tasks` the ``@task`` functions (``portfolio``, ``batches``, ``summary``, ``relink_report``),
:mod:`.group` the reusable group, :mod:`.sync_dag` the table's rows and the DAG built from one.
"""

from __future__ import annotations

from airflow_provider_codat.assets import codat_assets
from airflow_provider_codat.dags_builder.group import (
    POKE_INTERVAL_ENV,
    codat_sync_task_group,
    summary_output,
    sync_task,
)
from airflow_provider_codat.dags_builder.sync_dag import (
    START_DATE,
    SyncSpec,
    build_sync_dag,
    company_ids_param,
)
from airflow_provider_codat.landing.destination import (
    DESTINATION_VARIABLE,
    default_destination,
    resolve_destination,
)

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
