"""One wait, from its first poll to its one verdict: the loop shape every adapter drives.

:class:`Wait` holds a wait's progress (deadline, pace, the statuses last seen, the last transient error) and
turns each poll into either "not yet" or a final event. The sensor calls :meth:`Wait.poke` once per Airflow
poke; the blocking loop (:func:`run`, for the refresh operators) and the triggerer's loop (:func:`arun`) are the
same few lines, one with ``sleep`` and one with ``await``:

    while the deadline has not passed: poke; if there is a verdict, return it; sleep until the next poll.

The verdict is a plain-JSON event (:func:`make_event`), and :func:`resolve_event` turns it into the outcomes or
the error of the family (:mod:`airflow_provider_codat.errors`), on whichever side of a deferral it lands.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow_provider_codat.errors import (
    CodatAPIError,
    CodatSyncFailedError,
    CodatSyncTimeoutError,
    CodatValidationError,
    is_transient,
)
from airflow_provider_codat.safe_repr import shorten
from airflow_provider_codat.sync import decision as d
from airflow_provider_codat.sync.interval import (
    CLOCK,
    DEFAULT_MAX_POLL_INTERVAL,
    DEFAULT_POLL_INTERVAL,
    next_interval,
    spread,
)
from airflow_provider_codat.sync.ticket import WaitSpec
from airflow_provider_codat.sync.watcher import PollResult, SyncWatcher

log = logging.getLogger(__name__)

EVENT_STATUSES = ("success", "failed", "timeout", "error")
UNKNOWN = "Unknown"


def timeout_message(company_id: str, waited: float, pending: dict[str, str]) -> str:
    return (
        f"Timed out after {waited:.0f} s waiting for Codat syncs of company {company_id}; still running: "
        f"{d.pending_description(pending)}."
    )


def make_event(
    status: str,
    company_id: str,
    *,
    outcomes: dict[str, dict] | None = None,
    pending: dict[str, str] | None = None,
    message: str = "",
    waited: float = 0.0,
    error_type: str | None = None,
) -> dict[str, Any]:
    """The payload of a wait's one event (plain JSON: a checked company id leaves as a plain string).

    :param status: ``success``, ``failed``, ``timeout`` or ``error``.
    :param error_type: for ``error``: ``CodatValidationError`` or ``CodatAPIError`` (what to raise again).
    """
    if status not in EVENT_STATUSES:
        raise ValueError(f"Unknown event status {status!r}")
    event = {
        "status": status,
        "company_id": str(company_id),
        "outcomes": outcomes or {},
        "pending": pending or {},
        "message": message,
        "waited_seconds": round(waited, 3),
    }
    if error_type:
        event["error_type"] = error_type
    return event


def verdict(spec: WaitSpec, outcomes: dict[str, dict], waited: float) -> dict[str, Any]:
    """The ``success`` or ``failed`` event for finished outcomes."""
    summary = d.summarize(outcomes)
    if summary.succeeded:
        return make_event("success", spec.company_id, outcomes=outcomes, waited=waited)
    message = summary.failure_message(spec.company_id)
    return make_event("failed", spec.company_id, outcomes=outcomes, message=message, waited=waited)


class Wait:
    """A wait's progress and its rules; no I/O of its own beyond the hook calls it is handed.

    :param spec: what to wait for.
    :param deadline: epoch seconds (on :data:`~.interval.CLOCK`) after which the wait times out.
    :param started_at: epoch seconds when the wait began: drives the pace and the messages.
    :param poll_interval: the first interval; it doubles...
    :param max_poll_interval: ...up to this.
    :param spread_polls: stretch each interval a little, differently per wait (for many waits in one loop).
    :param logger: where progress goes.
    """

    def __init__(
        self,
        spec: WaitSpec,
        *,
        deadline: float,
        started_at: float,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        max_poll_interval: float = DEFAULT_MAX_POLL_INTERVAL,
        spread_polls: bool = False,
        logger: logging.Logger | Any = None,
    ) -> None:
        self.spec = spec
        self.deadline = float(deadline)
        self.started_at = float(started_at)
        self.poll_interval = float(poll_interval)
        self.max_poll_interval = max(float(poll_interval), float(max_poll_interval))
        self.spread_polls = spread_polls
        self.watcher = SyncWatcher(spec)
        self.pending: dict[str, str] = dict.fromkeys(spec.types, UNKNOWN)
        self.last_error = ""
        self.log = logger or log

    def waited(self) -> float:
        return CLOCK.now() - self.started_at

    def expired(self) -> bool:
        return CLOCK.now() >= self.deadline

    def next_delay(self) -> float:
        """Seconds until the next poll, never past the deadline."""
        delay = next_interval(self.poll_interval, self.max_poll_interval, self.waited())
        if self.spread_polls:
            delay = spread(delay, self.spec.seed, self.watcher.polls)
        return max(0.0, min(delay, self.deadline - CLOCK.now()))

    def timed_out(self) -> dict[str, Any]:
        message = timeout_message(self.spec.company_id, self.waited(), self.pending)
        if self.last_error:
            message += f" Last error from Codat: {self.last_error}"
        return make_event(
            "timeout", self.spec.company_id, pending=self.pending, message=message, waited=self.waited()
        )

    def timeout_error(self) -> CodatSyncTimeoutError:
        return CodatSyncTimeoutError(self.timed_out()["message"])

    def _judge(self, result: PollResult | None, error: BaseException | None) -> dict[str, Any] | None:
        if error is not None:
            if not is_transient(error):
                raise error
            self.last_error = str(error)
            self.log.warning("Codat did not answer this poll (%s); trying again at the next one.", error)
            return None
        self.last_error = ""
        if result.done:
            return verdict(self.spec, result.outcomes, self.waited())
        self.pending = result.pending
        self.log.info(
            "Waiting for Codat syncs of company %s: %s",
            self.spec.company_id,
            d.pending_description(result.pending),
        )
        return None

    def poke(self, hook) -> dict[str, Any] | None:
        """One poll with the sync hook: the final event, or ``None`` (not yet, or a transient error).

        :raises CodatAPIError: for an error that waiting would not cure (401, 404, a malformed answer).
        """
        try:
            result, error = self.watcher.poll(hook, deadline=self.deadline), None
        except Exception as exc:
            result, error = None, exc
        return self._judge(result, error)

    async def apoke(self, hook) -> dict[str, Any] | None:
        """The async twin of :meth:`poke`."""
        try:
            result, error = await self.watcher.apoll(hook, deadline=self.deadline), None
        except Exception as exc:
            result, error = None, exc
        return self._judge(result, error)


def run(wait: Wait, hook) -> dict[str, Any]:
    """Poll until a verdict or the deadline; return the event. (The blocking loop.)"""
    while not wait.expired():
        event = wait.poke(hook)
        if event is not None:
            return event
        CLOCK.sleep(wait.next_delay())
    return wait.timed_out()


async def arun(wait: Wait, hook) -> dict[str, Any]:
    """The async twin of :func:`run` (the triggerer's loop). A non-transient error becomes an ``error`` event."""
    try:
        while not wait.expired():
            event = await wait.apoke(hook)
            if event is not None:
                return event
            await CLOCK.asleep(wait.next_delay())
    except Exception as exc:  # anything waiting would not cure ends the wait with one event
        wait.log.error("Codat wait for company %s stopped: %s", wait.spec.company_id, exc)
        return error_event(wait.spec.company_id, exc, wait.pending, wait.waited())
    return wait.timed_out()


def error_event(
    company_id: str, exc: BaseException, pending: dict[str, str], waited: float
) -> dict[str, Any]:
    """The ``error`` event for an error that waiting would not cure (bad input, 401, 404, a malformed answer)."""
    return make_event(
        "error",
        company_id,
        pending=pending,
        message=f"{type(exc).__name__}: {exc}",
        waited=waited,
        error_type="CodatValidationError" if isinstance(exc, CodatValidationError) else "CodatAPIError",
    )


def finish(
    company_id: str, outcomes: dict[str, dict], *, fail_on_error: bool = True, logger=None
) -> dict[str, dict]:
    """Judge finished outcomes: warn about ``NotSupported``, raise one message for every failure.

    :returns: the outcomes (also when some failed and ``fail_on_error`` is False).
    :raises CodatSyncFailedError: when a type failed and ``fail_on_error`` is True.
    """
    logger = logger or log
    summary = d.summarize(outcomes)
    if summary.warnings:
        logger.warning("%s", summary.warning_message(company_id))
    if not summary.succeeded:
        message = summary.failure_message(company_id)
        if fail_on_error:
            raise CodatSyncFailedError(message, summary.failed)
        logger.warning("%s (fail_on_error=False: returning the outcomes)", message)
    return outcomes


def resolve_event(event: Any, *, fail_on_error: bool = True, logger=None) -> dict[str, dict]:
    """Check a wait's event and return the outcomes, or raise for anything but success.

    :raises CodatSyncTimeoutError: for a ``timeout`` event.
    :raises CodatSyncFailedError: for a ``failed`` event (unless ``fail_on_error`` is False).
    :raises CodatValidationError: for an ``error`` event about bad input.
    :raises CodatAPIError: for any other ``error`` event, or a malformed one.
    """
    if not isinstance(event, dict) or event.get("status") not in EVENT_STATUSES:
        raise CodatAPIError(f"Unexpected event from CodatSyncTrigger: {shorten(event, 200)}")
    status = event["status"]
    outcomes = event.get("outcomes")
    if status == "timeout":
        raise CodatSyncTimeoutError(event.get("message") or "Timed out waiting for Codat syncs.")
    if status == "error":
        message = f"CodatSyncTrigger stopped on an error: {event.get('message') or 'unknown'}"
        if event.get("error_type") == "CodatValidationError":
            raise CodatValidationError(message)
        raise CodatAPIError(message)
    if not isinstance(outcomes, dict) or not outcomes:
        raise CodatAPIError(f"CodatSyncTrigger sent a {status} event without outcomes: {shorten(event, 200)}")
    company_id = event.get("company_id", "?")
    # Trust the outcomes over the label: a "success" carrying a failed type still fails.
    return finish(company_id, outcomes, fail_on_error=fail_on_error, logger=logger)
