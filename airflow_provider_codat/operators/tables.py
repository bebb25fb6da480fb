"""The table operators (docs/tables.md). Each table is the Asset ``codat-table://{dataType}``; its event's extra
says what the task did to it.

- :class:`CodatMergeTablesOperator`: merge one run's landed data into each data type's current-state Delta
  table. Put it after the company tasks of a run (the example DAGs do: ``codat_sync.tables``): one commit per
  data type for every company of the run, whatever their number. Companies whose run did not commit are left
  out.
- :class:`CodatForgetCompaniesOperator`: companies deleted at Codat leave every table (by default those the
  task's triggering ``codat://deleted-companies`` events name: ``dags/codat_on_company_deleted.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset, BaseOperator, ObjectStoragePath

from airflow_provider_codat.assets import DELETED_COMPANIES_URI, set_asset_extras, table_asset
from airflow_provider_codat.errors import CodatTableError
from airflow_provider_codat.landing.destination import resolve_destination, storage_dataset_name
from airflow_provider_codat.sync.ticket import normalize_data_types
from airflow_provider_codat.validation import require_bool
from airflow_provider_codat.values import CompanyId

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context

log = logging.getLogger(__name__)


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
        from airflow_provider_codat.health.table_rows import push_table_report
        from airflow_provider_codat.tables.batch import event_extra, merge_types

        if self.companies is None:
            raise CodatTableError("No companies to merge: the task that planned the run failed (see it).")
        company_ids, planned_destination = companies_of(self.companies)
        destination = resolve_destination(self.destination or planned_destination)
        results, failures = merge_types(
            data_types=normalize_data_types(self.data_types),
            destination=destination,
            company_ids=company_ids,
            run_id=self.run_id or str(context["run_id"]),
            tables=self.tables or None,
            keep_deleted=require_bool(self.keep_deleted, "keep_deleted"),
        )
        extras = {data_type: event_extra(result) for data_type, result in results.items()}
        set_asset_extras(context, self.outlets, extras, asset=table_asset)
        # The companies' rows in each table merged, for the health page (which never reads a table itself).
        push_table_report(
            context,
            destination=destination,
            tables=self.tables or None,
            data_types=results,
            company_ids=company_ids,
        )
        if failures:
            raise CodatTableError(
                f"{len(failures)} tables were not merged (the others are committed): " + "; ".join(failures)
            )
        return results

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage (with the ``openlineage`` extra): each merged table as an output, with its row counts."""
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


class CodatForgetCompaniesOperator(BaseOperator):
    """Companies deleted at Codat leave every data type's table, and no later merge brings them back.

    Codat deletes all of a deleted company's data; this task does the same to the tables under the tables'
    folder (:func:`~airflow_provider_codat.tables.deleted_companies.forget_companies`: the companies are
    recorded, then their rows removed, one commit per table; a retry changes nothing). The landing is not
    touched. Returns ``{companies, recorded, tables: {data_type: {table, version, removed or flagged}}}``.

    :param companies: company ids, a list or comma-separated string; ``None`` or empty: the ``company_id`` of
        each of the task's triggering asset events on ``codat://deleted-companies`` (what the webhook receiver
        writes for ``company.deleted``). Templated.
    :param destination: the landing's destination; ``None``: the ``codat_destination`` Variable. Templated.
    :param tables: the folder of the tables; ``None``: ``{destination}/_tables``. Templated.
    :param keep_deleted: flag the companies' rows ``_codat_deleted`` instead of removing them (use the same
        setting as the merges of these tables). Templated.
    """

    template_fields: Sequence[str] = ("companies", "destination", "tables", "keep_deleted")
    ui_color = "#f1dcdc"

    def __init__(
        self,
        *,
        companies: Sequence[str] | str | None = None,
        destination: str | None = None,
        tables: str | None = None,
        keep_deleted: bool | str = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.companies = companies
        self.destination = destination
        self.tables = tables
        self.keep_deleted = keep_deleted

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_codat.tables.deleted_companies import forget_companies
        from airflow_provider_codat.tables.location import tables_root

        keep_deleted = require_bool(self.keep_deleted, "keep_deleted")
        if not self.companies:
            deleted = deleted_companies_of(context.get("triggering_asset_events") or {})
        else:
            deleted = dict.fromkeys(companies_of(self.companies)[0])
        if not deleted:
            log.info("No deleted company named: nothing to forget")
        root = tables_root(resolve_destination(self.destination), self.tables or None)
        result = forget_companies(
            root=root, company_ids=list(deleted), deleted_at=deleted, keep_deleted=keep_deleted
        )
        extras = {
            data_type: {**outcome, "companies": result.companies}
            for data_type, outcome in result.tables.items()
        }
        set_asset_extras(context, self.outlets, extras, asset=table_asset)
        return result.as_dict()


def deleted_companies_of(
    triggering_asset_events: Mapping[Any, Iterable[Any]],
) -> dict[str, str | None]:
    """``{company id: deleted_at}`` from the events on ``codat://deleted-companies`` among a run's triggering
    asset events (other assets' events are left alone).

    :param triggering_asset_events: the task context's ``triggering_asset_events``.
    :raises CodatValidationError: an event there names no valid company id (nothing is written then).
    """
    uri = Asset(DELETED_COMPANIES_URI).uri
    found: dict[str, str | None] = {}
    for events in triggering_asset_events.values():
        for event in events:
            if getattr(event.asset, "uri", None) != uri:
                continue
            extra = event.extra or {}
            company_id = str(
                CompanyId.parse(
                    extra.get("company_id"), f"company_id of the event of webhook {extra.get('webhook_id')}"
                )
            )
            found.setdefault(company_id, extra.get("deleted_at"))
    return found


def tables_lineage(results: dict[str, dict[str, Any]]) -> OperatorLineage:
    """The lineage of a finished merge task from its return value ``{data_type: result}``.

    :param results: what :class:`~airflow_provider_codat.operators.tables.CodatMergeTablesOperator` returned.
    """
    from airflow.providers.common.compat.openlineage.facet import (
        OutputDataset,
        OutputStatisticsOutputDatasetFacet,
    )
    from airflow.providers.openlineage.extractors import OperatorLineage

    outputs = []
    for result in results.values():
        location = result["table"]
        uri = location if "://" in location else "file://" + location
        namespace, name = storage_dataset_name(ObjectStoragePath(uri))
        rows = int(result["inserted"]) + int(result["updated"]) + int(result["deleted"])
        statistics = OutputStatisticsOutputDatasetFacet(rowCount=rows)
        outputs.append(
            OutputDataset(namespace=namespace, name=name, outputFacets={"outputStatistics": statistics})
        )
    return OperatorLineage(inputs=[], outputs=outputs)
