"""Codat → your storage, one DAG per sync frequency, following Codat's guidance on sync frequencies.

Change the table, not the code: each row is one DAG (``airflow_provider_codat.dags_builder.SyncSpec``).
Every DAG lists the linked companies, refreshes them (one task per company), waits for exactly those syncs
(deferrable), and extracts what changed (one task per company × data type) to the destination in the
run's Params, else the ``codat_destination`` Variable, else ``$AIRFLOW_HOME/codat-data``; then merges the
run into each data type's current-state Delta table under ``{destination}/_tables`` (docs/tables.md). The
weekly DAG also reconciles the types whose deletions Codat does not flag (docs/extract.md#reconcile).
"""

from __future__ import annotations

from datetime import timedelta

from airflow_provider_codat.dags_builder import SyncSpec, build_sync_dag
from airflow_provider_codat.datatypes import DAILY_TYPES, fetch_on_first_link_types

SYNC_TABLE = [
    SyncSpec(
        dag_id="codat_sync_hourly",
        schedule="@hourly",
        data_types=["invoices", "payments"],
        description="Invoices and payments every hour: the invoice-financing case. Mind platform rate limits.",
        timeout=timedelta(minutes=50),
        max_poll_interval=120,
    ),
    SyncSpec(
        dag_id="codat_sync_daily",
        schedule="@daily",
        data_types=list(DAILY_TYPES),
        description="The transactional types every day: a close-to-live picture within platform limits.",
    ),
    SyncSpec(
        dag_id="codat_sync_weekly",
        schedule="@weekly",
        data_types=fetch_on_first_link_types(),
        refresh="all",
        description="Refresh-all every week (Codat's recommended frequency): every fetch-on-first-link type; "
        "reconciles the types whose deletions Codat does not flag.",
        timeout=timedelta(hours=12),
        # Bank transactions, banking and commerce records Codat drops leave no trace: a full read each week
        # tombstones them (docs/extract.md#reconcile), so a dropped record shows for at most a week.
        reconcile=True,
    ),
    SyncSpec(
        dag_id="codat_sync_monthly",
        schedule="@monthly",
        data_types=["company", "taxRates", "chartOfAccounts"],
        description="Company info, tax rates and chart of accounts monthly: keeps every connection's token "
        "alive; reports connections to re-link.",
        timeout=timedelta(hours=12),
        relink_report=True,
        table_maintenance=True,  # compact, cluster and vacuum every table; keep a week of history
        table_retention=timedelta(days=7),
    ),
]

for _spec in SYNC_TABLE:
    globals()[_spec.dag_id] = build_sync_dag(_spec)
