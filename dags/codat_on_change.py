"""Zero polling: extract what Codat says changed, as soon as it says so.

Codat's signed ``read.completed`` webhooks reach the provider's receiver on Airflow's API server
(``POST /codat/webhooks``, docs/webhooks.md), which turns each changed data type into an asset event on
``codat://{dataType}``. This DAG is scheduled on those assets: one run takes every event that arrived since the
previous run and extracts exactly the (company, data type) pairs they name, with the same exactly-once extract
as the sync DAGs. No refresh (Codat already synced), no wait, no ``dataStatus`` polling.

The daily sync DAG stays: it is the sweep for any delivery that was missed.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, Asset, AssetAny, Param

from airflow_provider_codat.dags_builder import START_DATE
from airflow_provider_codat.on_change import changed_pairs, watched_asset_uris
from airflow_provider_codat.operators.extract import CodatExtractOperator

with DAG(
    dag_id="codat_on_change",
    description="Extract the company data types Codat's webhooks report as changed (no polling).",
    schedule=AssetAny(*(Asset(uri) for uri in watched_asset_uris())),
    start_date=START_DATE,
    catchup=False,
    # One run at a time: events arriving meanwhile are folded into the next run, and two extracts of the same
    # company and type never race.
    max_active_runs=1,
    max_active_tasks=4,
    params={
        "destination": Param(
            None,
            type=["null", "string"],
            description="Storage URI or path; empty: the codat_destination Variable, else $AIRFLOW_HOME/codat-data.",
        )
    },
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30)},
    tags=["codat", "webhooks"],
    doc_md=__doc__,
) as dag:
    CodatExtractOperator.partial(
        task_id="extract",
        map_index_template="{{ task.company_id }} {{ task.data_type }}",
        max_active_tis_per_dag=4,
    ).expand_kwargs(changed_pairs())
