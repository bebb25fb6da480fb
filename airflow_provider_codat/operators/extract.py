"""CodatExtractOperator: land what changed in a Codat data type into object storage, exactly once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, ObjectStoragePath

from airflow_provider_codat.assets import set_asset_extras
from airflow_provider_codat.datatypes import DataType, Scope, get_data_type
from airflow_provider_codat.defaults import DEFAULT_CONN_ID
from airflow_provider_codat.errors import (
    CodatDataNotSyncedError,
    CodatExtractError,
    CodatQuotaExhaustedError,
    CodatValidationError,
)
from airflow_provider_codat.extract.request import DEFAULT_LOG_INTERVAL, DEFAULT_MAX_PASSES, ExtractRequest
from airflow_provider_codat.extract.run import run_extract
from airflow_provider_codat.extract.writer import (
    DEFAULT_COMPRESSLEVEL,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_RECORDS,
)
from airflow_provider_codat.hooks.paging import DEFAULT_PAGE_SIZE
from airflow_provider_codat.landing.destination import check_destination
from airflow_provider_codat.links import CodatCompanyLink
from airflow_provider_codat.operators.base import CodatHookMixin, is_template
from airflow_provider_codat.operators.deferral import ResumesAfterQuotaReset, defer_until_quota_resets
from airflow_provider_codat.safe_repr import shorten
from airflow_provider_codat.validation import require_bool, require_int, require_page_size
from airflow_provider_codat.values import CompanyId, ConnectionId

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["CodatDataNotSyncedError", "CodatExtractError", "CodatExtractOperator"]


class CodatExtractOperator(ResumesAfterQuotaReset, CodatHookMixin, BaseOperator):
    """Extract one Codat data type of one company into ``destination``, writing each record version once.

    Output (``docs/extract.md`` explains every choice)::

        {destination}/{company_id}/{data_type}/_state.json                     written last: the commit
        {destination}/{company_id}/{data_type}/run={run_id}/part-00000.jsonl.gz

    Incremental types are read with ``modifiedDate>={watermark}`` ordered by ``modifiedDate``; the first run
    reads everything. Full types (no ``modifiedDate``) and snapshot types (company info, financial statements)
    are written whole each run. Connection-scoped types are read from every connection of the company (or
    ``connection_id``), bank transactions from every bank account.

    Returns, and sets as the extra of the outlet Asset ``codat://{data_type}`` when the task has it,
    ``{company_id, data_type, records, deleted, pages, files, watermark_from, watermark_to}``.

    :param company_id: the Codat company id (a UUID). Templated.
    :param data_type: the Codat data type key, e.g. ``invoices``. Templated.
    :param destination: where to write, any ObjectStoragePath URI: ``file:///data/codat``,
        ``s3://aws_default@bucket/codat``. Templated.
    :param include_deleted: keep records deleted in the source (``metadata.isDeleted: true``) so that
        downstream can delete them; ``False`` filters them out in the query.
    :param full_refresh: ignore the saved watermark, read everything, and reset the state to this read.
    :param page_size: records per request (1 to 5000).
    :param connection_id: read only this connection (connection-scoped types). Templated.
    :param codat_conn_id: the Airflow connection to Codat.
    :param period_length: months per period, for financial statements.
    :param periods_to_compare: number of periods, for financial statements (24 months of history by default).
    :param start_month: first month of the statements (``YYYY-MM-01``), for financial statements.
    :param max_passes: reads to attempt when syncs keep completing during the read, before failing.
    :param max_file_bytes: start a new part file after this many uncompressed bytes.
    :param max_file_records: start a new part file after this many records.
    :param compresslevel: gzip level of the part files (0 to 9).
    :param log_interval: seconds between progress lines on a long extract.
    :param known_synced: a sync of the type is known to have completed (a Codat ``read.completed`` webhook says
        so): the extract skips its ``dataStatus`` check and makes no call but the reads. Templated.
    """

    template_fields: Sequence[str] = (
        "company_id",
        "data_type",
        "destination",
        "connection_id",
        "include_deleted",
        "full_refresh",
        "known_synced",
    )
    ui_color = "#e8f4fb"
    operator_extra_links = (CodatCompanyLink(),)

    def __init__(
        self,
        *,
        company_id: str,
        data_type: str,
        destination: str | ObjectStoragePath,
        include_deleted: bool | str = True,
        full_refresh: bool | str = False,
        page_size: int = DEFAULT_PAGE_SIZE,
        connection_id: str | None = None,
        codat_conn_id: str = DEFAULT_CONN_ID,
        period_length: int = 1,
        periods_to_compare: int = 24,
        start_month: str | None = None,
        max_passes: int = DEFAULT_MAX_PASSES,
        max_file_bytes: int = DEFAULT_MAX_BYTES,
        max_file_records: int = DEFAULT_MAX_RECORDS,
        compresslevel: int = DEFAULT_COMPRESSLEVEL,
        log_interval: float = DEFAULT_LOG_INTERVAL,
        known_synced: bool | str = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.company_id = company_id
        self.data_type = data_type
        self.destination = destination
        self.include_deleted = include_deleted
        self.full_refresh = full_refresh
        self.page_size = require_page_size(page_size)
        self.connection_id = connection_id
        self.codat_conn_id = codat_conn_id
        self.period_length = require_int(period_length, "period_length")
        self.periods_to_compare = require_int(periods_to_compare, "periods_to_compare")
        self.start_month = start_month
        self.max_passes = require_int(max_passes, "max_passes")
        self.max_file_bytes = require_int(max_file_bytes, "max_file_bytes")
        self.max_file_records = require_int(max_file_records, "max_file_records")
        self.compresslevel = require_int(compresslevel, "compresslevel", minimum=0)
        if self.compresslevel > 9:
            raise CodatValidationError(f"compresslevel must be from 0 to 9, got {shorten(compresslevel)}.")
        self.log_interval = log_interval
        self.known_synced = known_synced
        # Catch mistakes at parse time when the values are plain (templated ones are checked in execute).
        if _given(company_id):
            CompanyId.parse(company_id, "company_id")
        if _given(data_type):
            get_data_type(data_type)
        if _given(destination):
            check_destination(destination)  # the URI's shape only: building the path may look up a connection
        if _given(connection_id) and connection_id:
            ConnectionId.parse(connection_id, "connection_id")

    def execute(self, context: Context) -> dict[str, Any]:
        try:
            summary = run_extract(self.hook, self._request(context))
        except CodatQuotaExhaustedError as exc:
            defer_until_quota_resets(self, context, exc, method_name="execute_after_quota_reset")
        if summary:
            set_asset_extras(context, self.outlets, {summary["data_type"]: summary})
        return summary

    def get_openlineage_facets_on_complete(self, task_instance):
        """OpenLineage of this run (with the ``openlineage`` extra): see :mod:`airflow_provider_codat.extract.lineage`."""
        from airflow_provider_codat.extract.lineage import extract_lineage

        return extract_lineage(
            hook=self.hook,
            company_id=self.company_id,
            data_type=self.data_type,
            destination=self.destination,
            task_instance=task_instance,
        )

    def _request(self, context: Context) -> ExtractRequest:
        """The templated arguments, rendered and parsed once into the run's request (before any request)."""
        company_id = CompanyId.parse(self.company_id, "company_id")
        entry = get_data_type(self.data_type)
        connection_id = (
            ConnectionId.parse(self.connection_id, "connection_id") if self.connection_id else None
        )
        if connection_id and entry.scope is Scope.COMPANY:
            raise CodatValidationError(
                f"Data type {entry.key!r} is read per company: drop connection_id (it applies to "
                "connection-scoped types such as bankAccounts or commerce-orders)."
            )
        return ExtractRequest.for_run(
            company_id=company_id,
            data_type=entry,
            destination=self.destination,
            run_id=str(context["run_id"]),
            include_deleted=require_bool(self.include_deleted, "include_deleted"),
            full_refresh=require_bool(self.full_refresh, "full_refresh"),
            page_size=self.page_size,
            connection_id=connection_id,
            report_params=self._report_params(entry),
            max_passes=self.max_passes,
            max_file_bytes=self.max_file_bytes,
            max_file_records=self.max_file_records,
            compresslevel=self.compresslevel,
            log_interval=self.log_interval,
            known_synced=require_bool(self.known_synced, "known_synced"),
        )

    def _report_params(self, entry: DataType) -> dict[str, Any]:
        """``periodLength``, ``periodsToCompare`` and ``startMonth`` for a financial statement; else none."""
        if not entry.report:
            return {}
        params: dict[str, Any] = {
            "periodLength": self.period_length,
            "periodsToCompare": self.periods_to_compare,
        }
        if self.start_month:
            params["startMonth"] = self.start_month
        return params


def _given(value: Any) -> bool:
    """A value given as is: a string, not a Jinja template nor an XCom reference to resolve later."""
    return isinstance(value, str) and not is_template(value)
