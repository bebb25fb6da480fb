"""A report gate: accounts receivable per company, computed only from data synced together.

Codat's advice: a figure built from several data types (here invoices, credit notes, payments, account
transactions and customers) can be wrong when they were synced at different times. So this DAG

1. refreshes and extracts those types with the reusable group (``codat_sync_task_group``, one call);
2. per company, checks with ``CodatFreshnessSensor`` that their ``lastSuccessfulSync`` are recent and within
   an hour of each other;
3. only then computes the company's open receivables from the landed files.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections import defaultdict
from datetime import timedelta

from airflow.sdk import DAG, get_current_context, task, task_group

from airflow_provider_codat.dags_builder import (
    START_DATE,
    codat_sync_task_group,
    company_ids_param,
    resolve_destination,
)
from airflow_provider_codat.dags_builder.tasks import portfolio
from airflow_provider_codat.sensors.freshness import CodatFreshnessSensor

log = logging.getLogger(__name__)

AR_TYPES = ["invoices", "creditNotes", "payments", "accountTransactions", "customers"]
OPEN = {"Submitted", "PartiallyPaid"}


@task
def company_ids(companies: list[dict]) -> list[str]:
    """The ids of the run's companies (the ``company_ids`` Param, else every linked company)."""
    return [company["id"] for company in companies]


def _newest(company_dir, data_type: str) -> dict[str, dict]:
    """The newest version of each record across every run's files (the landed table, rebuilt)."""
    newest: dict[str, dict] = {}
    for part in sorted((company_dir / data_type).glob("run=*/part-*.jsonl.gz")):
        with part.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as lines:
            for line in lines:
                record = json.loads(line)
                kept = newest.get(record["id"])
                if kept is None or (record.get("modifiedDate") or "") >= (kept.get("modifiedDate") or ""):
                    newest[record["id"]] = record
    return {k: v for k, v in newest.items() if not (v.get("metadata") or {}).get("isDeleted")}


@task(map_index_template="{{ company_label }}")
def accounts_receivable(company_id: str) -> dict[str, float]:
    """Open invoices less unused credit, per currency."""
    from airflow.sdk import ObjectStoragePath

    get_current_context()["company_label"] = company_id  # the mapped task's label in the UI

    company_dir = ObjectStoragePath(resolve_destination()) / company_id
    totals: dict[str, float] = defaultdict(float)
    for invoice in _newest(company_dir, "invoices").values():
        if invoice.get("status") in OPEN:
            totals[invoice.get("currency") or "?"] += float(invoice.get("amountDue") or 0)
    for note in _newest(company_dir, "creditNotes").values():
        if note.get("status") in OPEN:
            totals[note.get("currency") or "?"] -= float(note.get("remainingCredit") or 0)
    report = {currency: round(amount, 2) for currency, amount in sorted(totals.items())}
    log.info("Accounts receivable of %s: %s", company_id, report)
    return report


with DAG(
    dag_id="codat_ar_report",
    description="Accounts receivable per company, gated on consistent lastSuccessfulSync.",
    schedule="@daily",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["codat", "report"],
    doc_md=__doc__,
    params={
        "company_ids": company_ids_param("Empty: every company with a Linked connection."),
    },
):
    listed = portfolio()["companies"]
    chosen = company_ids(listed)
    sync = codat_sync_task_group(
        companies=listed,
        data_types=AR_TYPES,
        group_id="sync_ar_types",
        poll_interval=15,
        max_poll_interval=300,
    )

    @task_group(group_id="report")
    def report(company_id: str) -> None:
        gate = CodatFreshnessSensor(
            task_id="freshness_gate",
            company_id=company_id,
            data_types=AR_TYPES,
            max_age=timedelta(hours=26),
            max_skew=timedelta(hours=1),
            poke_interval=60,
            timeout=timedelta(minutes=30).total_seconds(),
            mode="reschedule",
            # Each company is judged on its own data, whatever happened to the others' syncs.
            trigger_rule="all_done",
            map_index_template="{{ task.company_id }}",
        )
        gate >> accounts_receivable(company_id)

    sync >> report.expand(company_id=chosen)
