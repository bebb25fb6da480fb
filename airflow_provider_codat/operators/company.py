"""CodatCompanySyncOperator: refresh, wait for and extract every requested data type of one company, in one task.

For portfolios: one task instance per company instead of one per company and data type. The refresh queues each
type (or ``data/all``), the wait defers to :class:`~airflow_provider_codat.triggers.sync.CodatSyncTrigger` (the
worker slot is free while Codat syncs), and the extract reads every type concurrently with one ``dataStatus``
read before and one after (:mod:`airflow_provider_codat.company_extract`). Each type commits on its own; the task
fails at the end naming each failed type with Codat's message.

Past Airflow's ``max_map_length`` the example DAGs hand one task a batch of companies: they are all refreshed
first, then waited for and extracted one after another (the later ones have usually finished syncing by then).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset, BaseOperator
from airflow.sdk.exceptions import AirflowException

from airflow_provider_codat.defaults import DEFAULT_CONN_ID
from airflow_provider_codat.errors import (
    CodatCompanySyncFailedError,
    CodatSyncTimeoutError,
    CodatValidationError,
    is_transient,
)
from airflow_provider_codat.extract.company import DEFAULT_MAX_CONCURRENCY, extract_types
from airflow_provider_codat.extract.core import ExtractRequest
from airflow_provider_codat.extract.destination import check_destination
from airflow_provider_codat.hooks.paging import DEFAULT_PAGE_SIZE
from airflow_provider_codat.links import CodatCompanyLink, push_company_link
from airflow_provider_codat.operators.refresh import CodatQueueDataTypesOperator, CodatRefreshAllDataOperator
from airflow_provider_codat.safe_repr import shorten
from airflow_provider_codat.sync.decision import State, decide_since
from airflow_provider_codat.sync.interval import CLOCK, DEFAULT_MAX_POLL_INTERVAL, DEFAULT_POLL_INTERVAL
from airflow_provider_codat.sync.status import SUCCEEDED, WARNED
from airflow_provider_codat.sync.ticket import WaitSpec, normalize_data_types, to_seconds
from airflow_provider_codat.sync.wait import Wait, run
from airflow_provider_codat.sync.watcher import SyncWatcher
from airflow_provider_codat.validation import require_bool, require_data_type, require_page_size, require_uuid
from airflow_provider_codat.version_compat import TaskDeferred, conf

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_codat.hooks.codat import CodatHook

REFRESH_MODES = ("queue", "all", "none")
# Where a deferred task finds its progress again when the runner keeps only the trigger's event
# (``airflow dags test`` does); a real deployment hands it back through next_kwargs.
STATE_XCOM_KEY = "codat_company_sync"
DEFERRAL_GRACE = timedelta(minutes=5)
EXTRACTED, NOT_SUPPORTED, FAILED = "extracted", "not_supported", "failed"


class CodatCompanySyncOperator(BaseOperator):
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
    :param codat_conn_id: the Airflow connection to Codat.
    :param poll_interval: first interval between two looks at the syncs, seconds (doubles each look).
    :param max_poll_interval: the interval's cap, seconds.
    :param timeout: how long to wait for the syncs (default 6 hours).
    :param max_concurrency: data types of a company read at once (Codat serves 10 concurrent requests per
        company; each type keeps one in flight).
    :param page_size: records per request (1 to 5000).
    :param deferrable: wait in the triggerer, freeing the worker slot.
    """

    template_fields: Sequence[str] = (
        "company_id",
        "company_name",
        "data_types",
        "destination",
        "refresh",
        "include_deleted",
        "full_refresh",
    )
    operator_extra_links = (CodatCompanyLink(),)
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
        codat_conn_id: str = DEFAULT_CONN_ID,
        poll_interval: timedelta | float = DEFAULT_POLL_INTERVAL,
        max_poll_interval: timedelta | float = DEFAULT_MAX_POLL_INTERVAL,
        timeout: timedelta | float = timedelta(hours=6),
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        page_size: int = DEFAULT_PAGE_SIZE,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.company_id = company_id
        self.data_types = data_types
        self.destination = destination
        self.refresh = refresh
        self.include_deleted = include_deleted
        self.full_refresh = full_refresh
        self.company_name = company_name
        self.codat_conn_id = codat_conn_id
        self.poll_interval = to_seconds(poll_interval, "poll_interval")
        self.max_poll_interval = max(self.poll_interval, to_seconds(max_poll_interval, "max_poll_interval"))
        self.timeout = to_seconds(timeout, "timeout")
        if not 1 <= int(max_concurrency) <= 10:
            raise ValueError(
                f"max_concurrency must be from 1 to 10 (Codat serves 10 concurrent requests per company), "
                f"got {max_concurrency!r}."
            )
        self.max_concurrency = int(max_concurrency)
        self.page_size = require_page_size(page_size)
        self.deferrable = deferrable
        if isinstance(refresh, str) and "{{" not in refresh and refresh not in REFRESH_MODES:
            raise ValueError(f"refresh must be one of {', '.join(REFRESH_MODES)}, got {refresh!r}.")

    @cached_property
    def hook(self) -> CodatHook:
        from airflow_provider_codat.hooks.codat import CodatHook

        return CodatHook(codat_conn_id=self.codat_conn_id)

    # -- the steps ---------------------------------------------------------------------------------------------
    def execute(self, context: Context) -> dict[str, Any]:
        companies = self._companies()
        types = normalize_data_types(self.data_types)
        if self.refresh not in REFRESH_MODES:
            raise CodatValidationError(
                f"refresh must be one of {', '.join(REFRESH_MODES)}, got {shorten(self.refresh)}."
            )
        from airflow_provider_codat.extract.destination import resolve_destination

        destination = resolve_destination(self.destination or None)
        check_destination(destination)  # a malformed URI fails here, before any request
        state: dict[str, Any] = {
            "companies": companies,
            "types": types,
            "destination": destination,
            "deadline": CLOCK.now() + self.timeout,
            "started_at": CLOCK.now(),
            "index": 0,
            "syncs": {},  # company -> {"datasets": {type: dataset id}, "outcomes": {type: outcome}}
            "results": {},  # company -> {type: outcome}
        }
        if len(companies) == 1:
            push_company_link(context, self.hook, companies[0])
        for company_id in companies:
            try:
                state["syncs"][company_id] = self._refresh(context, company_id, types)
            except Exception as exc:  # this company fails alone; the batch goes on
                self.log.error("Refreshing company %s failed: %s", company_id, exc)
                failure = {"company_id": company_id, **_failed(f"refresh failed: {exc}")}
                state["results"][company_id] = dict.fromkeys(types, failure)
        return self._proceed(context, state)

    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None, state: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Resume after the trigger: note the company's sync outcomes, extract it, go on with the batch."""
        if state is None:
            ti = context["ti"]
            state = ti.xcom_pull(task_ids=self.task_id, key=STATE_XCOM_KEY, map_indexes=ti.map_index)
        if not isinstance(state, dict):
            raise AirflowException(
                f"{type(self).__name__} resumed without its progress (XCom {STATE_XCOM_KEY})."
            )
        company_id = state["companies"][state["index"]]
        state["syncs"][company_id]["outcomes"].update(_outcomes_of(event, state["syncs"][company_id]))
        state["syncs"][company_id]["datasets"] = {}
        return self._proceed(context, state)

    def _proceed(self, context: Context, state: dict[str, Any]) -> dict[str, Any]:
        companies = state["companies"]
        while state["index"] < len(companies):
            company_id = companies[state["index"]]
            sync = state["syncs"].get(company_id)
            if sync is not None and sync["datasets"]:
                try:
                    self._wait(context, company_id, sync, state)
                except TaskDeferred:
                    raise
                except Exception as exc:  # this company fails alone; the batch goes on
                    self.log.error("Waiting for company %s failed: %s", company_id, exc)
                    failure = {"company_id": company_id, **_failed(f"wait failed: {exc}")}
                    state["results"][company_id] = dict.fromkeys(state["types"], failure)
            if company_id not in state["results"]:
                state["results"][company_id] = self._extract(context, company_id, state)
            state["index"] += 1
        return self._finish(context, state)

    def _refresh(self, context: Context, company_id: str, types: list[str]) -> dict[str, Any]:
        """Queue what needs a sync; on a retry, skip the types that synced since the run started."""
        if self.refresh == "none":
            return {"datasets": {}, "outcomes": {t: {"status": "Complete"} for t in types}}
        done: dict[str, dict] = {}
        ti = context.get("ti")
        dag_run = context.get("dag_run")
        if ti is not None and (ti.try_number or 1) > 1 and getattr(dag_run, "start_date", None):
            status = self.hook.get_data_status(company_id)
            for data_type in types:
                decision = decide_since(status.get(data_type), dag_run.start_date)
                if decision.state is State.DONE and decision.outcome["status"] in SUCCEEDED:
                    done[data_type] = decision.outcome
            if done:
                self.log.info(
                    "%s: synced since the run started, not refreshed again: %s", company_id, ", ".join(done)
                )
        todo = [t for t in types if t not in done]
        if not todo:
            return {"datasets": {}, "outcomes": done}
        if self.refresh == "all" and not done:
            refresher: BaseOperator = CodatRefreshAllDataOperator(
                task_id=f"{self.task_id}_refresh", company_id=company_id, data_types=todo
            )
        else:
            refresher = CodatQueueDataTypesOperator(
                task_id=f"{self.task_id}_refresh", company_id=company_id, data_types=todo
            )
        refresher.__dict__["hook"] = self.hook  # one client for the whole task
        ticket = refresher.refresh(company_id)
        self.log.info(
            "%s: queued %s (joined running syncs: %s)",
            company_id,
            ", ".join(sorted(ticket["datasets"])) or "nothing",
            ", ".join(ticket["joined"]) or "none",
        )
        return {"datasets": ticket["datasets"], "outcomes": done}

    def _wait(self, context: Context, company_id: str, sync: dict[str, Any], state: dict[str, Any]) -> None:
        """Fill ``sync["outcomes"]`` once the company's syncs finish; defers (raises) while they run."""
        spec = WaitSpec(company_id=company_id, datasets=sync["datasets"])
        if state["index"] > 0:
            # A later company of a batch has often finished while the earlier ones were extracted: look first.
            try:
                result = SyncWatcher(spec).poll(self.hook)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                result = None
            if result is not None and result.done:
                sync["outcomes"].update(result.outcomes)
                sync["datasets"] = {}
                return
        wait = Wait(
            spec,
            deadline=state["deadline"],
            started_at=state["started_at"],
            poll_interval=self.poll_interval,
            max_poll_interval=self.max_poll_interval,
            logger=self.log,
        )
        if self.deferrable:
            from airflow_provider_codat.triggers.sync import CodatSyncTrigger

            context["ti"].xcom_push(key=STATE_XCOM_KEY, value=state)
            self.defer(
                trigger=CodatSyncTrigger.for_wait(wait, self.codat_conn_id),
                method_name="execute_complete",
                kwargs={"state": state},
                timeout=timedelta(seconds=max(0.0, state["deadline"] - CLOCK.now())) + DEFERRAL_GRACE,
            )
        event = run(wait, self.hook)
        if event.get("status") == "timeout":
            error = CodatSyncTimeoutError(event.get("message") or "timed out")
            sync["outcomes"].update(
                dict.fromkeys(sync["datasets"], {"status": "TimedOut", "error_message": str(error)})
            )
        else:
            sync["outcomes"].update(_outcomes_of(event, sync))
        sync["datasets"] = {}

    def _extract(self, context: Context, company_id: str, state: dict[str, Any]) -> dict[str, dict]:
        """Extract the company's types whose sync completed; note why the others were not."""
        outcomes = state["syncs"][company_id]["outcomes"]
        results: dict[str, dict] = {}
        requests = []
        for data_type in state["types"]:
            sync = outcomes.get(data_type) or {"status": "Unknown"}
            if sync.get("status") in SUCCEEDED:
                requests.append(self._request(context, company_id, data_type, state["destination"]))
            elif sync.get("status") in WARNED:
                self.log.warning("%s: %s is not supported by its platform.", company_id, data_type)
                results[data_type] = {"status": NOT_SUPPORTED}
            else:
                message = sync.get("error_message") or "no message from Codat"
                results[data_type] = _failed(f"sync {sync.get('status')}: {message}")
        results.update(
            extract_types(
                self.hook,
                requests,
                max_concurrency=self.max_concurrency,
                status_before=_status_seen(outcomes, [r.data_type.key for r in requests]),
            )
        )
        return {t: {"company_id": company_id, **results[t]} for t in state["types"]}

    def _request(self, context: Context, company_id: str, data_type: str, destination: str) -> ExtractRequest:
        return ExtractRequest.for_run(
            company_id=company_id,
            data_type=require_data_type(data_type),
            destination=destination,
            run_id=str(context["run_id"]),
            include_deleted=require_bool(self.include_deleted, "include_deleted"),
            full_refresh=require_bool(self.full_refresh, "full_refresh"),
            page_size=self.page_size,
        )

    def _finish(self, context: Context, state: dict[str, Any]) -> dict[str, Any]:
        results: dict[str, dict[str, dict]] = state["results"]
        failures = []
        for company_id, by_type in results.items():
            for data_type, outcome in by_type.items():
                self.log.info(
                    "%s %-22s %-13s %s",
                    company_id,
                    data_type,
                    outcome["status"],
                    outcome.get("error")
                    or f"{outcome.get('records', 0)} records, {outcome.get('deleted', 0)} deleted",
                )
                if outcome["status"] == FAILED:
                    failures.append(f"{company_id} {data_type}: {outcome['error']}")
        self._emit(context, results)
        single = len(state["companies"]) == 1
        value = results[state["companies"][0]] if single else results
        if failures:
            context["ti"].xcom_push(key="codat_outcomes", value=value)
            raise CodatCompanySyncFailedError(
                f"{len(failures)} data types did not land (the others are committed): " + "; ".join(failures)
            )
        return value

    def _emit(self, context: Context, results: dict[str, dict[str, dict]]) -> None:
        """Set the extra of each declared outlet ``codat://{data_type}``: the companies and records landed."""
        events = context.get("outlet_events")
        if events is None:
            return
        types = {Asset(f"codat://{t}").uri: t for t in {t for r in results.values() for t in r}}
        for outlet in self.outlets or ():
            data_type = types.get(outlet.uri) if isinstance(outlet, Asset) else None
            if data_type is None:
                continue
            landed = {
                company_id: by_type[data_type]
                for company_id, by_type in results.items()
                if (by_type.get(data_type) or {}).get("status") == EXTRACTED
            }
            events[outlet].extra.update(
                {
                    "source": "extract",
                    "company_ids": sorted(landed),
                    "records": sum(int(o.get("records") or 0) for o in landed.values()),
                    "deleted": sum(int(o.get("deleted") or 0) for o in landed.values()),
                }
            )

    def _companies(self) -> list[str]:
        value = self.company_id
        ids = [value] if isinstance(value, str) else list(value or [])
        if not ids:
            raise ValueError("company_id is required: give a Codat company id (or a list of them).")
        return list(dict.fromkeys(require_uuid(str(company_id), "company_id") for company_id in ids))


def _failed(message: str) -> dict[str, Any]:
    return {"status": FAILED, "error": message}


def _status_seen(outcomes: dict[str, dict], types: list[str]) -> dict[str, dict] | None:
    """``dataStatus`` entries as the wait's last look saw them, when it saw every type's successful sync."""
    seen = {}
    for data_type in types:
        outcome = outcomes.get(data_type) or {}
        if not (outcome.get("dataset_id") and outcome.get("last_successful_sync")):
            return None
        seen[data_type] = {
            "currentStatus": outcome["status"],
            "latestSuccessfulSyncId": outcome["dataset_id"],
            "lastSuccessfulSync": outcome["last_successful_sync"],
        }
    return seen


def _outcomes_of(event: Any, sync: dict[str, Any]) -> dict[str, dict]:
    """Per type, what the trigger's event says; a type it does not cover failed with the event's message."""
    event = event if isinstance(event, dict) else {}
    outcomes = dict(event.get("outcomes") or {})
    message = event.get("message") or f"the wait ended with {event.get('status') or 'no event'}"
    for data_type in sync["datasets"]:
        outcomes.setdefault(
            data_type, {"status": str(event.get("status") or "Unknown"), "error_message": message}
        )
    return outcomes
