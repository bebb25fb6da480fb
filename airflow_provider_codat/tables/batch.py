"""Merge several data types of one run, one commit per type: what the DAGs' ``tables`` task and
``CodatCompanySyncOperator(tables=True)`` call.

A type that fails (a value that does not fit its column) does not stop the others; the failures come back
with the results, each naming its type and the reason, for the task to fail with.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from airflow_provider_codat.errors import CodatError
from airflow_provider_codat.tables.merge import merge_runs

log = logging.getLogger(__name__)


def merge_types(
    *,
    data_types: Sequence[str],
    destination: Any,
    company_ids: Sequence[str],
    run_id: str,
    tables: Any = None,
    keep_deleted: bool = False,
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """``({data_type: MergeResult as a dict}, [failure messages])`` for run ``run_id`` of ``company_ids``.

    :param data_types: the catalogue keys to merge.
    :param destination: the landing's destination.
    :param company_ids: the companies whose run to merge (those whose run never committed are left out).
    :param run_id: the Airflow run id.
    :param tables: the tables' folder; ``None``: ``{destination}/_tables``.
    :param keep_deleted: keep deleted records as flagged rows.
    """
    results: dict[str, dict[str, Any]] = {}
    failures: list[str] = []
    for data_type in data_types:
        try:
            result = merge_runs(
                data_type=data_type,
                destination=destination,
                company_ids=company_ids,
                run_id=run_id,
                tables=tables,
                keep_deleted=keep_deleted,
            )
        except (CodatError, OSError, ValueError) as exc:
            log.error("%s: the table merge failed: %s", data_type, exc)
            failures.append(f"{data_type}: {exc}")
            continue
        results[data_type] = result.as_dict()
        log.info(
            "%-24s table version %s: %d inserted, %d updated, %d deleted (%d runs merged, %d held already)",
            data_type,
            result.version,
            result.inserted,
            result.updated,
            result.deleted,
            len(result.merged),
            len(result.already_held),
        )
    return results, failures


def event_extra(result: dict[str, Any]) -> dict[str, Any]:
    """The extra of a table's asset event: rows inserted, updated, deleted, the version and the table."""
    return {
        name: result[name] for name in ("table", "version", "inserted", "updated", "deleted", "source_rows")
    } | {"runs_merged": len(result["merged"])}
