"""The per-company sync without Airflow: refresh each company, wait for its syncs, extract every type.

:class:`CompanySync` works over a :class:`~airflow_provider_codat.company_progress.CompanySyncProgress`
(:meth:`CompanySync.start`), which a task hands to a deferral as JSON and carries on from when the trigger fires. Every company of a batch is refreshed
first (:meth:`~CompanySync.refresh`); then each is waited for and extracted in turn (:meth:`~CompanySync.advance`),
the later ones having usually finished syncing by then. A company that fails (its refresh, its wait) fails
alone: the batch goes on, and its types are reported failed with the reason.

The Airflow adapter (:class:`~airflow_provider_codat.operators.company.CodatCompanySyncOperator`) parses its
arguments, calls in, defers when :meth:`~CompanySync.advance` hands back a wait, and turns the outcomes into
XCom, asset events and the task's failure.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow_provider_codat.company_progress import CompanySyncOptions, CompanySyncProgress, CompanySyncs
from airflow_provider_codat.datatypes import DataType, get_data_type
from airflow_provider_codat.errors import CodatQuotaExhaustedError, CodatSyncTimeoutError, is_transient
from airflow_provider_codat.extract.company_reconcile import reconcile_company, reconcile_failure
from airflow_provider_codat.extract.concurrent_types import QUOTA_PAUSED, extract_types
from airflow_provider_codat.extract.request import ExtractRequest
from airflow_provider_codat.landing.destination import destination_path
from airflow_provider_codat.sync.decision import State, decide_since
from airflow_provider_codat.sync.interval import CLOCK
from airflow_provider_codat.sync.queueing import queue_data_types, refresh_all_data
from airflow_provider_codat.sync.status import SUCCEEDED, WARNED
from airflow_provider_codat.sync.ticket import WaitSpec
from airflow_provider_codat.sync.wait import Wait, run
from airflow_provider_codat.sync.watcher import SyncWatcher
from airflow_provider_codat.values import CompanyId

if TYPE_CHECKING:
    from airflow_provider_codat.hooks.codat import CodatHook

log = logging.getLogger(__name__)

EXTRACTED, NOT_SUPPORTED, FAILED = "extracted", "not_supported", "failed"


class CompanySync:
    """One task's companies, refreshed, waited for and extracted over a :class:`CompanySyncProgress`.

    :param hook: the Codat hook (one client for every company).
    :param progress: from :meth:`start`, or read back from what a deferral kept
        (:meth:`CompanySyncProgress.from_json`).
    :param ids: the checked ids of the progress's companies (by default parsed from it: it came back from
        outside).
    :param logger: where progress goes (the task's log).
    """

    def __init__(
        self,
        hook: CodatHook,
        progress: CompanySyncProgress,
        *,
        ids: dict[str, CompanyId] | None = None,
        logger: logging.Logger | Any = None,
    ) -> None:
        self.hook = hook
        self.progress = progress
        self.options = progress.options
        self.ids = ids or {key: CompanyId.parse(key, "company_id") for key in progress.companies}
        self.types: list[DataType] = [get_data_type(key) for key in progress.types]
        # Checked and turned into a storage path once; every type's request shares it.
        self.destination = destination_path(progress.destination)
        self.log = logger or log

    @classmethod
    def start(
        cls,
        hook: CodatHook,
        companies: Sequence[CompanyId],
        data_types: Sequence[str | DataType],
        destination: str,
        *,
        run_id: str,
        timeout: float,
        options: CompanySyncOptions,
        logger: logging.Logger | Any = None,
    ) -> CompanySync:
        """A new sync of ``companies`` (checked ids) and ``data_types`` into ``destination`` (a checked URI).

        :param run_id: the run, which names the run folders.
        :param timeout: seconds the waits may take in all, from now.
        """
        now = CLOCK.now()
        progress = CompanySyncProgress(
            companies=[str(company_id) for company_id in companies],
            types=[get_data_type(data_type).key for data_type in data_types],
            destination=str(destination),
            run_id=str(run_id),
            options=options,
            deadline=now + timeout,
            started_at=now,
            refresh_began=now,
        )
        return cls(
            hook, progress, ids={str(company_id): company_id for company_id in companies}, logger=logger
        )

    # -- refresh ------------------------------------------------------------------------------------------------
    def refresh(self, *, retry_since: datetime | None = None) -> None:
        """Queue what each company needs; a company whose refresh fails fails alone.

        :param retry_since: on a retry, when the run started: types synced since then are not refreshed again.
        """
        if retry_since is None and self.progress.paused_in == "refresh":
            # Resuming after the daily quota paused the refresh: what this task queued before the pause and
            # has synced since is not queued again (what still runs is joined).
            retry_since = datetime.fromtimestamp(self.progress.refresh_began, UTC)
        for key, company_id in self.ids.items():
            if key in self.progress.syncs or key in self.progress.results:
                continue  # refreshed (or failed) before the daily quota paused the task
            try:
                self.progress.syncs[key] = self._refresh_one(company_id, retry_since)
            except CodatQuotaExhaustedError:
                raise  # the whole task pauses until the quota resets, then carries on from here
            except Exception as exc:  # this company fails alone; the batch goes on
                self.log.error("Refreshing company %s failed: %s", company_id, exc)
                self._fail(key, f"refresh failed: {exc}")
        # The waits pace themselves from here, when the syncs exist, not from the task's start: time the task
        # spent before (start-up, the destination's file system) would otherwise make the first look come early
        # and find a sync still running. The deadline still counts from the start.
        self.progress.started_at = CLOCK.now()

    def _refresh_one(self, company_id: CompanyId, retry_since: datetime | None) -> CompanySyncs:
        keys = [data_type.key for data_type in self.types]
        if self.options.refresh == "none":
            return CompanySyncs(outcomes={t: {"status": "Complete"} for t in keys})
        done = self._synced_since(company_id, keys, retry_since) if retry_since is not None else {}
        todo = [t for t in keys if t not in done]
        if not todo:
            return CompanySyncs(outcomes=done)
        if self.options.refresh == "all" and not done:
            ticket = refresh_all_data(self.hook, company_id, todo, logger=self.log)
        else:
            ticket = queue_data_types(self.hook, company_id, todo, logger=self.log)
        self.log.info(
            "%s: queued %s (joined running syncs: %s)",
            company_id,
            ", ".join(sorted(ticket["datasets"])) or "nothing",
            ", ".join(ticket["joined"]) or "none",
        )
        return CompanySyncs(datasets=dict(ticket["datasets"]), outcomes=done)

    def _synced_since(self, company_id: CompanyId, keys: list[str], since: datetime) -> dict[str, dict]:
        """The types whose sync completed since ``since`` (a retry need not refresh them again)."""
        status = self.hook.get_data_status(company_id)
        done: dict[str, dict] = {}
        for data_type in keys:
            decision = decide_since(status.get(data_type), since)
            if decision.state is State.DONE and decision.outcome["status"] in SUCCEEDED:
                done[data_type] = decision.outcome
        if done:
            self.log.info(
                "%s: synced since the run started, not refreshed again: %s", company_id, ", ".join(done)
            )
        return done

    # -- wait and extract ---------------------------------------------------------------------------------------
    def advance(self, *, deferrable: bool) -> Wait | None:
        """Wait for each remaining company's syncs and extract it, in turn.

        :param deferrable: hand back the wait instead of blocking on it.
        :returns: the wait to defer on (then :meth:`resume` with its event and call again), or ``None`` once
            every company is done.
        """
        progress = self.progress
        while not progress.finished:
            key = progress.current
            sync = progress.syncs.get(key)
            if sync is not None and sync.datasets:
                try:
                    wait = self._wait(key, sync, deferrable=deferrable)
                except CodatQuotaExhaustedError:
                    raise
                except Exception as exc:  # this company fails alone; the batch goes on
                    self.log.error("Waiting for company %s failed: %s", key, exc)
                    self._fail(key, f"wait failed: {exc}")
                else:
                    if wait is not None:
                        return wait
            if key not in progress.results:
                progress.results[key] = self._extract(key)
            progress.index += 1
        return None

    def resume(self, event: Any) -> None:
        """Note the trigger's event for the company whose wait was deferred."""
        sync = self.progress.syncs[self.progress.current]
        sync.settle(outcomes_of(event, sync))

    def _wait(self, key: str, sync: CompanySyncs, *, deferrable: bool) -> Wait | None:
        """Settle ``sync`` once the company's syncs finish; deferrable, hand back the wait instead."""
        spec = WaitSpec(company_id=self.ids[key], datasets=sync.datasets)
        # A later company of a batch has often finished while the earlier ones were extracted: look first.
        if self.progress.index > 0 and self._finished_already(spec, sync):
            return None
        wait = Wait(
            spec,
            deadline=self.progress.deadline,
            started_at=self.progress.started_at,
            poll_interval=self.options.poll_interval,
            max_poll_interval=self.options.max_poll_interval,
            logger=self.log,
        )
        if deferrable:
            return wait
        event = run(wait, self.hook)
        if event.get("status") == "timeout":
            error = CodatSyncTimeoutError(event.get("message") or "timed out")
            timed_out = {"status": "TimedOut", "error_message": str(error)}
            sync.settle(dict.fromkeys(sync.datasets, timed_out))
        else:
            sync.settle(outcomes_of(event, sync))
        return None

    def _finished_already(self, spec: WaitSpec, sync: CompanySyncs) -> bool:
        try:
            result = SyncWatcher(spec).poll(self.hook)
        except Exception as exc:
            if not is_transient(exc):
                raise
            return False
        if not result.done:
            return False
        sync.settle(result.outcomes)
        return True

    def _extract(self, key: str) -> dict[str, dict]:
        """Extract the company's types whose sync completed; note why the others were not."""
        outcomes = self.progress.syncs[key].outcomes
        results: dict[str, dict] = {}
        requests = []
        for data_type in self.types:
            sync = outcomes.get(data_type.key) or {"status": "Unknown"}
            if sync.get("status") in SUCCEEDED:
                requests.append(self._request(key, data_type))
            elif sync.get("status") in WARNED:
                self.log.warning("%s: %s is not supported by its platform.", key, data_type.key)
                results[data_type.key] = {"status": NOT_SUPPORTED}
            else:
                message = sync.get("error_message") or "no message from Codat"
                results[data_type.key] = failed(f"sync {sync.get('status')}: {message}")
        results.update(
            extract_types(
                self.hook,
                requests,
                max_concurrency=self.options.max_concurrency,
                status_before=status_seen(outcomes, [r.data_type.key for r in requests]),
            )
        )
        raise_if_quota_paused(results)
        self._reconcile(requests, results, outcomes)
        return {t: {"company_id": key, **results[t]} for t in self.progress.types}

    def _reconcile(
        self, requests: list[ExtractRequest], results: dict[str, dict], outcomes: dict[str, dict]
    ) -> None:
        """Reconcile the chosen types whose extract committed; each type's outcome gets ``reconcile``.

        Their ``dataStatus`` is the wait's last look when it saw them all (else one read).
        """
        chosen = set(self.options.reconcile)
        todo = [
            r
            for r in requests
            if r.data_type.key in chosen and results[r.data_type.key]["status"] == EXTRACTED
        ]
        status = status_seen(outcomes, [r.data_type.key for r in todo])
        for data_type, summary in reconcile_company(self.hook, todo, status).items():
            results[data_type]["reconcile"] = summary

    def _request(self, key: str, data_type: DataType) -> ExtractRequest:
        return ExtractRequest.for_run(
            company_id=self.ids[key],
            data_type=data_type,
            destination=self.destination,
            run_id=self.progress.run_id,
            include_deleted=self.options.include_deleted,
            full_refresh=self.options.full_refresh,
            page_size=self.options.page_size,
        )

    def _fail(self, key: str, message: str) -> None:
        failure = {"company_id": key, **failed(message)}
        self.progress.results[key] = dict.fromkeys(self.progress.types, failure)

    # -- the outcomes -------------------------------------------------------------------------------------------
    def value(self) -> dict[str, Any]:
        """``{data_type: outcome}`` for one company, ``{company_id: {data_type: outcome}}`` for a batch."""
        results = self.progress.results
        companies = self.progress.companies
        return results[companies[0]] if len(companies) == 1 else results

    def report(self) -> list[str]:
        """Log one line per company and type; return the failures, one ``"{company} {type}: {error}"`` each."""
        failures = []
        for company_id, by_type in self.progress.results.items():
            for data_type, outcome in by_type.items():
                self.log.info(
                    "%s %-22s %-13s %s",
                    company_id,
                    data_type,
                    outcome["status"],
                    outcome.get("error") or _landed_line(outcome),
                )
                if outcome["status"] == FAILED:
                    failures.append(f"{company_id} {data_type}: {outcome['error']}")
                problem = reconcile_failure(outcome.get("reconcile"))
                if problem:
                    failures.append(f"{company_id} {data_type} reconcile: {problem}")
        return failures

    def asset_extras(self) -> dict[str, dict[str, Any]]:
        """Per data type, the extra of its asset event: the companies and records landed."""
        results = self.progress.results
        extras = {}
        for data_type in {t for by_type in results.values() for t in by_type}:
            landed = {
                company_id: by_type[data_type]
                for company_id, by_type in results.items()
                if (by_type.get(data_type) or {}).get("status") == EXTRACTED
            }
            extras[data_type] = {
                "source": "extract",
                "company_ids": sorted(landed),
                "records": sum(int(o.get("records") or 0) for o in landed.values()),
                "deleted": sum(int(o.get("deleted") or 0) for o in landed.values()),
                "reconciled_deletions": sum(
                    int((o.get("reconcile") or {}).get("tombstoned") or 0) for o in landed.values()
                ),
            }
        return extras


def _landed_line(outcome: dict[str, Any]) -> str:
    """``N records, M deleted`` and, after a reconcile, what it landed."""
    line = f"{outcome.get('records', 0)} records, {outcome.get('deleted', 0)} deleted"
    reconciled = outcome.get("reconcile") or {}
    if reconciled.get("status") in ("reconciled", "skipped"):
        line += (
            f"; reconcile {reconciled['status']}: {reconciled.get('tombstoned', 0)} gone, "
            f"{reconciled.get('returned', 0)} back"
        )
    return line


def raise_if_quota_paused(results: dict[str, dict]) -> None:
    """Raise the daily quota's refusal when a type could not be read for it: the company is extracted again
    after the reset (the types that committed meanwhile are not read again)."""
    for result in results.values():
        if result.get("status") == QUOTA_PAUSED:
            raise CodatQuotaExhaustedError(result["error"], resets_at=result.get("resets_at"))


def failed(message: str) -> dict[str, Any]:
    """A type's failed outcome."""
    return {"status": FAILED, "error": message}


def status_seen(outcomes: dict[str, dict], types: list[str]) -> dict[str, dict] | None:
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


def outcomes_of(event: Any, sync: CompanySyncs) -> dict[str, dict]:
    """Per type, what the trigger's event says; a type it does not cover failed with the event's message."""
    event = event if isinstance(event, dict) else {}
    outcomes = dict(event.get("outcomes") or {})
    message = event.get("message") or f"the wait ended with {event.get('status') or 'no event'}"
    for data_type in sync.datasets:
        outcomes.setdefault(
            data_type, {"status": str(event.get("status") or "Unknown"), "error_message": message}
        )
    return outcomes
