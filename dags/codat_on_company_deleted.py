"""Companies deleted at Codat leave the tables: one run per batch of ``company.deleted`` webhooks.

Codat's ``company.deleted`` webhook reaches the provider's receiver on Airflow's API server (docs/webhooks.md),
which turns it into an asset event on ``codat://deleted-companies`` (extra: ``company_id``, ``company_name``,
``deleted_at``). This DAG is scheduled on that asset: each run takes every deletion since the previous run,
records the companies beside the tables and removes their rows from every data type's table, so that their
data stops looking current and no later merge brings it back (docs/tables.md). The landing is left as it is.

Triggered by hand with ``company_ids`` (a list), it forgets those companies instead: for a deletion whose
webhook was missed.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, Asset, Param

from airflow_provider_codat.assets import DELETED_COMPANIES_URI, table_assets
from airflow_provider_codat.dags_builder import START_DATE
from airflow_provider_codat.datatypes import CATALOGUE
from airflow_provider_codat.operators.tables import CodatForgetCompaniesOperator

with DAG(
    dag_id="codat_on_company_deleted",
    description="Remove the rows of companies deleted at Codat from the current-state tables.",
    schedule=Asset(DELETED_COMPANIES_URI),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,  # deletions arriving meanwhile are folded into the next run
    params={
        "company_ids": Param(
            None,
            type=["null", "array"],
            items={"type": "string"},
            description="Companies to forget; empty: those of the triggering codat://deleted-companies events.",
        ),
        "destination": Param(
            None,
            type=["null", "string"],
            description="Storage URI or path; empty: the codat_destination Variable, else $AIRFLOW_HOME/codat-data.",
        ),
        "keep_deleted": Param(
            False,
            type="boolean",
            description="Flag the companies' rows _codat_deleted instead of removing them (as the sync DAGs' "
            "keep_deleted).",
        ),
    },
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30)},
    tags=["codat", "webhooks", "tables"],
    doc_md=__doc__,
) as dag:
    CodatForgetCompaniesOperator(
        task_id="forget_companies",
        companies="{{ params.company_ids | join(',') if params.company_ids else '' }}",
        destination="{{ params.destination or '' }}",
        keep_deleted="{{ params.keep_deleted }}",
        outlets=table_assets(CATALOGUE),
    )
