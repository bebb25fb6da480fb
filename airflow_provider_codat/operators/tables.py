"""CodatMergeTablesOperator: merge one run's landed data into each data type's current-state Delta table.

Put it after the company tasks of a run (the example DAGs do: ``codat_sync.tables``): one commit per data type
for every company of the run, whatever their number. Companies whose run did not commit are left out. Each
table is the Asset ``codat-table://{dataType}``; its event's extra says what the merge did. See docs/tables.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_codat.assets import set_asset_extras, table_asset
from airflow_provider_codat.errors import CodatTableError
from airflow_provider_codat.extract.destination import resolve_destination
from airflow_provider_codat.sync.ticket import normalize_data_types
from airflow_provider_codat.validation import require_bool
from airflow_provider_codat.values import CompanyId

if TYPE_CHECKING:
    from airflow.sdk import Context


class CodatMergeTablesOperator(BaseOperator):
    """Merge run ``run_id`` of ``companies`` into the table of each of ``data_types``, one commit per type.

    Returns ``{data_type: {table, version, inserted, updated, deleted, merged, already_held, ...}}``. A type
    that fails does not stop the others; the task then fails naming each failed type.

    :param data_types: catalogue keys, a list or comma-separated string. Templated.
    :param companies: company ids, or the work items of the sync group's ``batches`` task (``company_id``
        an id or a list, ``destination``). Templated.
    :param destination: the landing's destination; ``None``: the work items' destination, else the
        ``codat_destination`` Variable. Templated.
    :param tables: the folder of the tables; ``None``: ``{destination}/_tables``. Templated.
    :param keep_deleted: keep deleted records as rows flagged ``_codat_deleted`` instead of removing them.
    :param run_id: the run whose landing to merge; ``None``: this task's run. Templated.
    """

    template_fields: Sequence[str] = (
        "data_types",
        "companies",
        "destination",
        "tables",
        "keep_deleted",
        "run_id",
    )
    ui_color = "#e3f1dc"

    def __init__(
        self,
        *,
        data_types: Sequence[str] | str,
        companies: Any,
        destination: str | None = None,
        tables: str | None = None,
        keep_deleted: bool | str = False,
        run_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.data_types = data_types
        self.companies = companies
        self.destination = destination
        self.tables = tables
        self.keep_deleted = keep_deleted
        self.run_id = run_id

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_codat.tables.batch import event_extra, merge_types

        if self.companies is None:
            raise CodatTableError("No companies to merge: the task that planned the run failed (see it).")
        company_ids, planned_destination = companies_of(self.companies)
        results, failures = merge_types(
            data_types=normalize_data_types(self.data_types),
            destination=resolve_destination(self.destination or planned_destination),
            company_ids=company_ids,
            run_id=self.run_id or str(context["run_id"]),
            tables=self.tables or None,
            keep_deleted=require_bool(self.keep_deleted, "keep_deleted"),
        )
        extras = {data_type: event_extra(result) for data_type, result in results.items()}
        set_asset_extras(context, self.outlets, extras, asset=table_asset)
        if failures:
            raise CodatTableError(
                f"{len(failures)} tables were not merged (the others are committed): " + "; ".join(failures)
            )
        return results

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage (with the ``openlineage`` extra): each merged table as an output, with its row counts."""
        from airflow_provider_codat.tables.lineage import tables_lineage

        return tables_lineage(task_instance.xcom_pull(task_ids=task_instance.task_id) or {})


def companies_of(companies: Any) -> tuple[list[str], str | None]:
    """``(company ids, destination)`` from ids (a list or comma-separated string) or ``batches`` work items.

    :param companies: what :class:`CodatMergeTablesOperator` was given.
    """
    items = [part.strip() for part in companies.split(",")] if isinstance(companies, str) else list(companies)
    ids: list[str] = []
    destination = None
    for item in items:
        if isinstance(item, dict):
            found = item["company_id"]
            ids.extend([found] if isinstance(found, str) else found)
            destination = destination or item.get("destination")
        elif item:
            ids.append(item)
    return [str(CompanyId.parse(company_id, "companies")) for company_id in dict.fromkeys(ids)], destination
