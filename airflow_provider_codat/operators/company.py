"""CodatCompanySyncOperator: refresh, wait for and extract every requested data type of one company, in one task.

The work is plain code (:class:`~airflow_provider_codat.company_sync.CompanySync`); this operator parses its
arguments, calls in, defers while Codat syncs, and reports: XCom, asset events, the failure naming each type.

For portfolios: one task instance per company instead of one per company and data type. The refresh queues each
type (or ``data/all``), the wait defers to :class:`~airflow_provider_codat.triggers.sync.CodatSyncTrigger` (the
worker slot is free while Codat syncs), and the extract reads every type concurrently with one ``dataStatus``
read before and one after (:mod:`airflow_provider_codat.extract.concurrent_types`). Each type commits on its own; the task
fails at the end naming each failed type with Codat's message.

Past Airflow's ``max_map_length`` the example DAGs hand one task a batch of companies: they are all refreshed
first, then waited for and extracted one after another (the later ones have usually finished syncing by then).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow_provider_codat.assets import set_asset_extras
from airflow_provider_codat.budget.usage import EVENT_KEY, add_counts, take_counts
from airflow_provider_codat.company_progress import CompanySyncOptions, CompanySyncProgress, check_refresh
from airflow_provider_codat.company_sync import CompanySync
from airflow_provider_codat.errors import (
    CodatCompanySyncFailedError,
    CodatQuotaExhaustedError,
)
from airflow_provider_codat.extract.company_reconcile import reconcile_choice
from airflow_provider_codat.extract.concurrent_types import DEFAULT_MAX_CONCURRENCY
from airflow_provider_codat.health.task_report import push_health_report
from airflow_provider_codat.hooks.paging import DEFAULT_PAGE_SIZE
from airflow_provider_codat.landing.destination import resolve_destination
from airflow_provider_codat.links import push_company_link
from airflow_provider_codat.operators.base import CodatWaitingOperator, is_template
from airflow_provider_codat.operators.deferral import defer_until_quota_resets, defer_wait, resumed_value
from airflow_provider_codat.sync.ticket import normalize_data_types
from airflow_provider_codat.validation import require_bool, require_page_size
from airflow_provider_codat.values import CompanyId

if TYPE_CHECKING:
    from airflow.sdk import Context


__all__ = ["STATE_XCOM_KEY", "CodatCompanySyncFailedError", "CodatCompanySyncOperator"]

# Where a deferred task finds its progress again when the runner keeps only the trigger's event
# (``airflow dags test`` does); a real deployment hands it back through next_kwargs.
STATE_XCOM_KEY = "codat_company_sync"


class CodatCompanySyncOperator(CodatWaitingOperator):
    """Refresh, wait for and extract every requested data type of one company (or a batch of companies).

    Returns ``{data_type: outcome}`` for one company (``{company_id: {data_type: outcome}}`` for a batch),
    where an outcome is ``{"status": "extracted", records, deleted, pages, files, watermark_from,
    watermark_to, ...}`` or ``{"status": "not_supported"}``. When a type fails, the others still commit; the
    outcomes (failed ones with ``error``) are pushed to XCom ``codat_outcomes`` and the task fails naming each.

    A retry is cheap: a type whose sync completed since the run started is not refreshed again, and a type this
    run already committed is not read again.

    :param company_id: the Codat company id, or a list of them (a batch). Templated.
    :param data_types: catalogue keys, a list or comma-separated string. Templated.
    :param destination: a storage URI (``file:///data/codat``, ``s3://aws_default@bucket/codat``) or local
        path; ``None`` or empty reads the ``codat_destination`` Variable at run time. Templated.
    :param refresh: ``"queue"`` (one ``data/queue`` per type), ``"all"`` (``data/all``) or ``"none"``
        (extract what Codat already has). Templated.
    :param include_deleted: keep records deleted in the source (``metadata.isDeleted``). Templated.
    :param full_refresh: ignore the saved watermarks and read everything again. Templated.
    :param company_name: the label of the task in the grid (``map_index_template="{{ task.company_name }}"``).
    :param max_concurrency: data types of a company read at once (Codat serves 10 concurrent requests per
        company; each type keeps one in flight).
    :param page_size: records per request (1 to 5000).
    :param tables: also merge what this task landed into each type's current-state Delta table (one commit
        per type for the task's companies; docs/tables.md): ``True`` for ``{destination}/_tables``, or the
        tables' folder as a URI. For many companies prefer one ``CodatMergeTablesOperator`` after all of
        them (the example DAGs' ``tables`` task): fewer, larger commits. Templated.
    :param keep_deleted: keep deleted records in the tables, flagged ``_codat_deleted``. Templated.
    :param reconcile: after a type's extract, reconcile it (docs/extract.md#reconcile): a full read of each scope
        that lands a tombstone for each record Codat dropped without flagging it. ``True`` for every type of
        ``data_types`` that needs it (incremental, without ``metadata.isDeleted``: bank transactions, banking
        and commerce types), or a list of such types; default off. A type's outcome then carries
        ``reconcile`` (its summary). It costs at least one request per scope, and is skipped for a type with
        no successful sync since its last reconcile. Templated.

    ``codat_conn_id``, ``poll_interval``, ``max_poll_interval``, ``timeout`` (how long to wait for the syncs,
    default 6 hours) and ``deferrable`` as in :class:`~airflow_provider_codat.operators.refresh.CodatWaitingOperator`.
    """

    template_fields: Sequence[str] = (
        "company_id",
        "company_name",
        "data_types",
        "destination",
        "refresh",
        "include_deleted",
        "full_refresh",
        "tables",
        "keep_deleted",
        "reconcile",
    )
    ui_color = "#d7ecf7"

    def __init__(
        self,
        *,
        company_id: str | Sequence[str],
        data_types: Sequence[str] | str,
        destination: str | None = None,
        refresh: str = "queue",
        include_deleted: bool | str = True,
        full_refresh: bool | str = False,
        company_name: str | None = None,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        page_size: int = DEFAULT_PAGE_SIZE,
        tables: bool | str = False,
        keep_deleted: bool | str = False,
        reconcile: bool | str | Sequence[str] = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.reconcile = reconcile
        self.tables = tables
        self.keep_deleted = keep_deleted
        self.company_id = company_id
        self.data_types = data_types
        self.destination = destination
        self.refresh = refresh
        self.include_deleted = include_deleted
        self.full_refresh = full_refresh
        self.company_name = company_name
        if not 1 <= int(max_concurrency) <= 10:
            raise ValueError(
                f"max_concurrency must be from 1 to 10 (Codat serves 10 concurrent requests per company), "
                f"got {max_concurrency!r}."
            )
        self.max_concurrency = int(max_concurrency)
        self.page_size = require_page_size(page_size)
        if not is_template(refresh):
            check_refresh(refresh)  # at parse time when given as is

    def execute(self, context: Context) -> dict[str, Any]:
        companies = self._companies()
        types = normalize_data_types(self.data_types)
        options = self._options(types)
        # The destination is checked (and made a storage path) in start, before any request.
        sync = CompanySync.start(
            self.hook,
            companies,
            types,
            resolve_destination(self.destination or None),
            run_id=str(context["run_id"]),
            timeout=self.timeout,
            options=options,
            logger=self.log,
        )
        if len(companies) == 1:
            push_company_link(context, self.hook, companies[0])
        self._refresh(context, sync)
        return self._proceed(context, sync)

    def execute_complete(
        self,
        context: Context,
        event: dict[str, Any] | None = None,
        state: dict[str, Any] | None = None,
        codat_requests: dict[str, int] | None = None,
    ) -> dict[str, Any]:
        """Resume after the trigger: note the company's sync outcomes, extract it, go on with the batch."""
        sync = self._resumed(context, state)
        add_counts(codat_requests)  # the task's requests before it deferred, for the health report
        if isinstance(event, dict):  # the triggerer's requests, likewise
            add_counts(event.get(EVENT_KEY))
        sync.resume(event)
        return self._proceed(context, sync)

    def execute_after_quota_reset(
        self,
        context: Context,
        event: Any = None,
        state: dict[str, Any] | None = None,
        codat_requests: dict[str, int] | None = None,
    ) -> dict[str, Any]:
        """Carry on where Codat's daily quota paused the task, now that it has reset."""
        sync = self._resumed(context, state)
        add_counts(codat_requests)
        if sync.progress.paused_in == "refresh":
            self._refresh(context, sync)  # nothing queued before the pause is queued again
        sync.progress.paused_in = None
        return self._proceed(context, sync)

    def _resumed(self, context: Context, state: dict[str, Any] | None) -> CompanySync:
        """The sync as the task deferred it (this release's progress, or the dict the previous one kept)."""
        kept = resumed_value(self, context, state, backup_key=STATE_XCOM_KEY, what="progress")
        return CompanySync(self.hook, CompanySyncProgress.from_json(kept), logger=self.log)

    def _refresh(self, context: Context, sync: CompanySync) -> None:
        try:
            sync.refresh(retry_since=_retry_since(context))
        except CodatQuotaExhaustedError as exc:
            self._pause(context, sync, exc, "refresh")

    def _pause(
        self, context: Context, sync: CompanySync, error: CodatQuotaExhaustedError, stage: str
    ) -> None:
        """Free the worker slot until the daily quota resets; resume in ``stage`` with the progress so far."""
        sync.progress.paused_in = stage
        defer_until_quota_resets(
            self,
            context,
            error,
            method_name="execute_after_quota_reset",
            kwargs=_deferral_kwargs(sync),
            backup_key=STATE_XCOM_KEY,
        )

    def _proceed(self, context: Context, sync: CompanySync) -> dict[str, Any]:
        try:
            wait = sync.advance(deferrable=self.deferrable)
        except CodatQuotaExhaustedError as exc:
            self._pause(context, sync, exc, "advance")
        if wait is not None:
            defer_wait(self, context, wait, kwargs=_deferral_kwargs(sync), backup_key=STATE_XCOM_KEY)
        failures = sync.report()
        set_asset_extras(context, self.outlets, sync.asset_extras())
        merge_failures, table_results = self._merge_tables(context, sync)
        failures += merge_failures
        push_health_report(
            context, sync, hook=self.hook, company_name=self.company_name, table_results=table_results
        )
        value = sync.value()
        if failures:
            context["ti"].xcom_push(key="codat_outcomes", value=value)
            raise CodatCompanySyncFailedError(
                f"{len(failures)} data types did not land (the others are committed): " + "; ".join(failures)
            )
        return value

    def _merge_tables(self, context: Context, sync: CompanySync) -> tuple[list[str], dict[str, dict]]:
        """Merge the types this task landed into their tables when ``tables`` asks; the failures and the
        merges' results."""
        tables = self.tables
        if isinstance(tables, str) and tables.strip().lower() in {"true", "false", "1", "0", "yes", "no", ""}:
            tables = require_bool(tables or False, "tables")
        if not tables:
            return [], {}
        from airflow_provider_codat.assets import table_asset
        from airflow_provider_codat.tables.batch import event_extra, merge_types

        results, failures = merge_types(
            data_types=sync.progress.types,
            destination=sync.destination,
            company_ids=sync.progress.companies,
            run_id=str(context["run_id"]),
            tables=None if tables is True else tables,
            keep_deleted=require_bool(self.keep_deleted, "keep_deleted"),
        )
        extras = {data_type: event_extra(result) for data_type, result in results.items()}
        set_asset_extras(context, self.outlets, extras, asset=table_asset)
        return [f"table {failure}" for failure in failures], results

    def _companies(self) -> list[CompanyId]:
        value = self.company_id
        ids = [value] if isinstance(value, str) else list(value or [])
        if not ids:
            raise ValueError("company_id is required: give a Codat company id (or a list of them).")
        return list(dict.fromkeys(CompanyId.parse(company_id, "company_id") for company_id in ids))

    def _options(self, types: list[str]) -> CompanySyncOptions:
        return CompanySyncOptions(
            refresh=self.refresh,
            include_deleted=require_bool(self.include_deleted, "include_deleted"),
            full_refresh=require_bool(self.full_refresh, "full_refresh"),
            page_size=self.page_size,
            max_concurrency=self.max_concurrency,
            poll_interval=self.poll_interval,
            max_poll_interval=self.max_poll_interval,
            reconcile=reconcile_choice(self.reconcile, types),
        )


def _retry_since(context: Context) -> datetime | None:
    """On a retry, when the run started (types synced since then need no refresh); else ``None``."""
    ti, dag_run = context.get("ti"), context.get("dag_run")
    if ti is None or (getattr(ti, "try_number", None) or 1) <= 1:
        return None
    return getattr(dag_run, "start_date", None) or None


def _deferral_kwargs(sync: CompanySync) -> dict[str, Any]:
    """What the resumed task gets back: the progress, and this process's requests so far (the process ends as
    the task defers, and its counts would never reach the health report)."""
    return {"state": sync.progress.to_json(), EVENT_KEY: {str(m): n for m, n in take_counts().items()}}
