"""Rows of each company in its current-state tables, counted by the task that merges them (the page never
reads a table: the count travels in the task's report, :mod:`.report`).

Counted once the merge committed, over the table's company column only and for the merged companies only, so
the files delta-rs prunes by their statistics are not read. Deleted records kept as flagged rows
(``keep_deleted``) are not counted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_codat.health.task_report import push_task_report

if TYPE_CHECKING:
    from airflow.sdk import Context

log = logging.getLogger(__name__)


def count_rows(uri: str, options: Mapping[str, str], company_ids: Sequence[str]) -> dict[str, int]:
    """``{company_id: live rows}`` of ``company_ids`` in the Delta table at ``uri`` (0 for none).

    :param uri: the table (``delta_location``'s URI).
    :param options: its storage options.
    :param company_ids: the companies to count.
    """
    import pyarrow.compute as pc
    from deltalake import DeltaTable

    from airflow_provider_codat.tables.key import COMPANY, DELETED

    dataset = DeltaTable(uri, storage_options=dict(options)).to_pyarrow_dataset()
    wanted = pc.field(COMPANY).isin(list(company_ids))
    if DELETED in dataset.schema.names:
        wanted = wanted & (pc.field(DELETED).is_null() | ~pc.field(DELETED))
    column = dataset.to_table(columns=[COMPANY], filter=wanted)[COMPANY]
    counts = dict.fromkeys(company_ids, 0)
    for entry in pc.value_counts(column).to_pylist():
        counts[str(entry["values"])] = int(entry["counts"])
    return counts


def table_rows(
    *, destination: Any, tables: Any, data_types: Iterable[str], company_ids: Sequence[str]
) -> dict[str, dict[str, int]]:
    """``{company_id: {data_type: live rows}}`` in the tables of ``data_types`` under ``destination``'s tables
    folder (``tables``, as the merge was given it). A type whose table cannot be read is left out."""
    from airflow_provider_codat.landing.destination import destination_path
    from airflow_provider_codat.tables.location import delta_location, tables_root

    root = tables_root(destination_path(destination), tables)
    found: dict[str, dict[str, int]] = {c: {} for c in company_ids}
    for data_type in data_types:
        try:
            uri, options = delta_location(root / data_type)
            counts = count_rows(uri, options, company_ids)
        except Exception:  # the page keeps the last count of this table
            log.warning("Could not count the rows of the %s table", data_type, exc_info=True)
            continue
        for company_id, rows in counts.items():
            found[company_id][data_type] = rows
    return found


def push_table_report(
    context: Context, *, destination: Any, tables: Any, data_types: Iterable[str], company_ids: Sequence[str]
) -> None:
    """Push the merging task's report: each merged company's rows per table. Never fails the task."""
    push_task_report(
        context,
        "the table rows",
        lambda: {
            "table_rows": table_rows(
                destination=destination, tables=tables, data_types=data_types, company_ids=company_ids
            )
        },
    )
