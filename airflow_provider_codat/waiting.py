"""The wait for Codat syncs, shared by the sensor, the trigger and the refresh operators.

* :class:`WaitSpec`: what is awaited (a ticket's datasets, or types synced after a moment), plain JSON.
* :class:`SyncWatcher`: one poll = one ``dataStatus`` call for any number of types, plus ``data/history/{id}``
  only for the types ``dataStatus`` cannot decide (sync and async twins).
* :func:`next_interval`: the growing interval, a function of the time waited so far, so a rescheduled sensor or
  a restarted trigger picks up where it was.
* Events: the one payload the trigger yields and :func:`resolve_event`, which turns it into a return value or
  an exception for ``execute_complete``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from airflow.sdk.exceptions import AirflowException

from airflow_provider_codat import sync_status as ss
from airflow_provider_codat.hooks.errors import CodatAPIError
from airflow_provider_codat.safe_repr import shorten

log = logging.getLogger(__name__)

DEFAULT_POLL_INTERVAL = 5.0
DEFAULT_MAX_POLL_INTERVAL = 300.0
# A history answer of "still running" is trusted while dataStatus shows the same entry, but not forever:
# every this many polls it is asked again.
LOOKUP_REFRESH_POLLS = 4

EVENT_STATUSES = ("success", "failed", "timeout", "error")


class Clock:
    """Wall-clock time and sleeping, in one replaceable place (the benchmark runs on simulated time)."""

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


CLOCK = Clock()


def next_interval(poll_interval: float, max_poll_interval: float, waited: float) -> float:
    """Seconds until the next poll: doubles from ``poll_interval`` (5, 10, 20, ...) up to ``max_poll_interval``.

    Derived from the time waited so far rather than a counter, so the growth survives reschedules and
    triggerer restarts: after ``n`` polls ``waited`` is ``poll * (2**n - 1)`` and the next step ``poll * 2**n``.
    """
    return max(poll_interval, min(max_poll_interval, poll_interval + max(0.0, waited)))


def is_transient(exc: BaseException) -> bool:
    """An error worth waiting out (the hook already retried it): no answer, 408, 429 or 5xx."""
    if isinstance(exc, httpx.TransportError):
        return True
    if isinstance(exc, CodatAPIError):
        status = exc.status_code
        return status is None or status in (408, 429) or status >= 500
    return False


@dataclass
class WaitSpec:
    """What a wait is for; JSON-serialisable with :meth:`to_json`.

    :param company_id: the company.
    :param datasets: data type -> dataset id (a ticket); or
    :param data_types: the types to wait for, with
    :param synced_after: ISO UTC moment the successful sync must be at or after.
    """

    company_id: str
    datasets: dict[str, str] | None = None
    data_types: list[str] | None = None
    synced_after: str | None = None

    def __post_init__(self) -> None:
        if self.datasets is None and not self.data_types:
            raise ValueError("Wait for a ticket's datasets, or for data_types synced after synced_after.")
        if self.datasets is None and ss.parse_timestamp(self.synced_after) is None:
            raise ValueError(
                f"synced_after must be an ISO 8601 date-time when no ticket is given, got {shorten(self.synced_after)}."
            )

    @property
    def types(self) -> list[str]:
        return sorted(self.datasets) if self.datasets is not None else sorted(set(self.data_types or []))

    def to_json(self) -> dict[str, Any]:
        return {
            "company_id": self.company_id,
            "datasets": dict(self.datasets) if self.datasets is not None else None,
            "data_types": list(self.data_types) if self.data_types is not None else None,
            "synced_after": self.synced_after,
        }


@dataclass
class PollResult:
    """One poll's view: finished types with their outcome, the rest with the status seen."""

    outcomes: dict[str, dict[str, Any]] = field(default_factory=dict)
    pending: dict[str, str] = field(default_factory=dict)
    calls: int = 0

    @property
    def done(self) -> bool:
        return not self.pending


class SyncWatcher:
    """Polls ``dataStatus`` for a :class:`WaitSpec` and decides each type with :mod:`sync_status`.

    It remembers, per type, the ``dataStatus`` entry for which ``data/history`` last said "still running", so a
    lagging ``dataStatus`` does not cost one extra call per type on every poll.
    """

    def __init__(self, spec: WaitSpec) -> None:
        self.spec = spec
        self._synced_after: datetime | None = ss.parse_timestamp(spec.synced_after)
        self._finished: dict[str, dict[str, Any]] = {}
        self._lookups: dict[str, tuple[tuple, str, int]] = {}
        self.polls = 0

    # A type once finished stays finished: later syncs must not change the answer for this wait.
    def _decide(self, data_type: str, entry: dict | None) -> ss.Decision:
        if data_type in self._finished:
            return ss.Decision.done(self._finished[data_type])
        if self.spec.datasets is not None:
            decision = ss.decide_ticket(entry, self.spec.datasets[data_type])
        else:
            decision = ss.decide_since(entry, self._synced_after)
        if decision.state == "lookup":
            cached = self._lookups.get(data_type)
            if (
                cached is not None
                and cached[0] == ss.entry_fingerprint(entry)
                and self.polls - cached[2] < LOOKUP_REFRESH_POLLS
            ):
                return ss.Decision.pending(cached[1])
        return decision

    def _after_lookup(self, data_type: str, entry: dict | None, operation: dict) -> ss.Decision:
        if self.spec.datasets is not None:
            decision = ss.decide_ticket_from_history(entry, self.spec.datasets[data_type], operation)
        else:
            decision = ss.decide_since_from_history(entry, self._synced_after, operation)
        if decision.state == "pending":
            self._lookups[data_type] = (ss.entry_fingerprint(entry), decision.status, self.polls)
        return decision

    def _collect(self, decisions: dict[str, ss.Decision], calls: int) -> PollResult:
        result = PollResult(calls=calls)
        for data_type, decision in decisions.items():
            if decision.state == "done":
                self._finished[data_type] = decision.outcome
                result.outcomes[data_type] = decision.outcome
            else:
                result.pending[data_type] = decision.status or ss.NOT_SYNCED
        return result

    def poll(self, hook) -> PollResult:
        """One poll with the sync hook."""
        self.polls += 1
        calls = 0
        status: dict[str, dict] = {}
        if len(self._finished) < len(self.spec.types):
            status = hook.get_data_status(self.spec.company_id)
            calls += 1
        decisions = {t: self._decide(t, status.get(t)) for t in self.spec.types}
        for data_type, decision in decisions.items():
            if decision.state == "lookup":
                operation = hook.get_pull_operation(self.spec.company_id, decision.lookup)
                calls += 1
                decisions[data_type] = self._after_lookup(data_type, status.get(data_type), operation)
        return self._collect(decisions, calls)

    async def apoll(self, hook) -> PollResult:
        """One poll with the async hook (no blocking call)."""
        self.polls += 1
        calls = 0
        status: dict[str, dict] = {}
        if len(self._finished) < len(self.spec.types):
            status = await hook.aget_data_status(self.spec.company_id)
            calls += 1
        decisions = {t: self._decide(t, status.get(t)) for t in self.spec.types}
        for data_type, decision in decisions.items():
            if decision.state == "lookup":
                operation = await hook.aget_pull_operation(self.spec.company_id, decision.lookup)
                calls += 1
                decisions[data_type] = self._after_lookup(data_type, status.get(data_type), operation)
        return self._collect(decisions, calls)


# --- events --------------------------------------------------------------------------------------------------


class CodatSyncFailed(AirflowException):
    """One or more awaited syncs ended in a failed status; the message lists each with Codat's errorMessage."""


class SyncTimeout(Exception):
    """The deadline passed with types still running (turned into ``AirflowSensorTimeout`` by the caller)."""


def timeout_message(company_id: str, waited: float, pending: dict[str, str]) -> str:
    return (
        f"Timed out after {waited:.0f} s waiting for Codat syncs of company {company_id}; still running: "
        f"{ss.pending_description(pending)}."
    )


def make_event(
    status: str,
    spec: WaitSpec,
    *,
    outcomes: dict[str, dict] | None = None,
    pending: dict[str, str] | None = None,
    message: str = "",
    waited: float = 0.0,
) -> dict[str, Any]:
    """The payload of the trigger's one event (plain JSON)."""
    if status not in EVENT_STATUSES:
        raise ValueError(f"Unknown event status {status!r}")
    return {
        "status": status,
        "company_id": spec.company_id,
        "outcomes": outcomes or {},
        "pending": pending or {},
        "message": message,
        "waited_seconds": round(waited, 3),
    }


def finish(
    company_id: str, outcomes: dict[str, dict], *, fail_on_error: bool = True, logger=None
) -> dict[str, dict]:
    """Judge finished outcomes: warn about ``NotSupported``, raise one message for every failure.

    :returns: the outcomes (also when some failed and ``fail_on_error`` is False).
    :raises CodatSyncFailed: when a type failed and ``fail_on_error`` is True.
    """
    logger = logger or log
    summary = ss.summarize(outcomes)
    if summary.warnings:
        logger.warning("%s", summary.warning_message(company_id))
    if not summary.succeeded:
        message = summary.failure_message(company_id)
        if fail_on_error:
            raise CodatSyncFailed(message)
        logger.warning("%s (fail_on_error=False: returning the outcomes)", message)
    return outcomes


def resolve_event(event: Any, *, fail_on_error: bool = True, logger=None) -> dict[str, dict]:
    """Check a trigger event and return the outcomes, or raise for anything but success.

    :raises SyncTimeout: for a ``timeout`` event (the caller turns it into ``AirflowSensorTimeout``).
    :raises CodatSyncFailed: for a ``failed`` event (unless ``fail_on_error`` is False).
    :raises CodatAPIError: for an ``error`` event or a malformed one.
    """
    if not isinstance(event, dict) or event.get("status") not in EVENT_STATUSES:
        raise CodatAPIError(f"Unexpected event from CodatSyncTrigger: {shorten(event, 300)}")
    status = event["status"]
    outcomes = event.get("outcomes")
    if status == "timeout":
        raise SyncTimeout(event.get("message") or "Timed out waiting for Codat syncs.")
    if status == "error":
        raise CodatAPIError(f"CodatSyncTrigger stopped on an error: {event.get('message') or 'unknown'}")
    if not isinstance(outcomes, dict) or not outcomes:
        raise CodatAPIError(f"CodatSyncTrigger sent a {status} event without outcomes: {shorten(event, 300)}")
    company_id = event.get("company_id", "?")
    summary = ss.summarize(outcomes)
    # Trust the outcomes over the label: a "success" carrying a failed type still fails.
    if status == "success" and summary.succeeded:
        return finish(company_id, outcomes, logger=logger)
    return finish(company_id, outcomes, fail_on_error=fail_on_error, logger=logger)


# --- the blocking loop (poke-mode sensor, non-deferrable operators) -------------------------------------------


def wait_blocking(
    hook,
    spec: WaitSpec,
    *,
    deadline: float,
    started_at: float,
    poll_interval: float,
    max_poll_interval: float,
    watcher: SyncWatcher | None = None,
    last: PollResult | None = None,
    logger=None,
) -> PollResult:
    """Poll until every type is finished; return the last :class:`PollResult`.

    :param last: the caller's own first poll, if it made one (the loop then starts by sleeping).
    :raises SyncTimeout: when ``deadline`` (epoch seconds) passes first.
    """
    logger = logger or log
    watcher = watcher or SyncWatcher(spec)
    last_pending = last.pending if last is not None else {t: "Unknown" for t in spec.types}
    polled = last is not None
    while True:
        now = CLOCK.now()
        if polled:
            delay = next_interval(poll_interval, max_poll_interval, now - started_at)
            CLOCK.sleep(min(delay, max(0.0, deadline - now)))
            now = CLOCK.now()
        if now >= deadline:
            raise SyncTimeout(timeout_message(spec.company_id, now - started_at, last_pending))
        result = poll_tolerant(watcher, hook, logger)
        polled = True
        if result is not None:
            if result.done:
                return result
            last_pending = result.pending
            logger.info(
                "Waiting for Codat syncs of company %s: %s",
                spec.company_id,
                ss.pending_description(result.pending),
            )


def poll_tolerant(watcher: SyncWatcher, hook, logger=None) -> PollResult | None:
    """One blocking poll; a transient error (after the hook's own retries) is logged and gives ``None``."""
    try:
        return watcher.poll(hook)
    except Exception as exc:
        if not is_transient(exc):
            raise
        (logger or log).warning("Codat did not answer this poll (%s); trying again at the next one.", exc)
        return None
