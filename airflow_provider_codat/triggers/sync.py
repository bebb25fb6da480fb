"""CodatSyncTrigger: wait for Codat syncs in the triggerer, polling ``dataStatus`` with the async hook."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_codat import waiting
from airflow_provider_codat.sync_status import pending_description, summarize
from airflow_provider_codat.waiting import (
    DEFAULT_MAX_POLL_INTERVAL,
    DEFAULT_POLL_INTERVAL,
    SyncWatcher,
    WaitSpec,
    is_transient,
    make_event,
    next_interval,
    timeout_message,
)


class CodatSyncTrigger(BaseTrigger):
    """Poll one company's ``dataStatus`` until every awaited type is finished; fire exactly one event.

    Every keyword is plain JSON and nothing is secret (the connection id, never the key). The deadline is an
    absolute wall-clock time, and the interval is derived from ``started_at``, so a trigger rebuilt from
    :meth:`serialize` after a triggerer restart resumes the same wait: same deadline, same pace.

    The event's payload: ``status`` (``success``, ``failed``, ``timeout`` or ``error``), ``company_id``,
    ``outcomes`` (type -> ``{status, dataset_id, last_successful_sync, error_message}``), ``pending``
    (type -> status, for a timeout), ``message`` and ``waited_seconds``.

    :param company_id: the company.
    :param deadline: epoch seconds (UTC) after which the wait times out.
    :param started_at: epoch seconds when the wait began (default: now); drives the interval and messages.
    :param datasets: a ticket's data type -> dataset id; or
    :param data_types: the types to wait for, with
    :param synced_after: the ISO UTC moment their successful sync must be at or after.
    :param codat_conn_id: the Airflow connection id.
    :param poll_interval: the first interval, in seconds; it doubles each poll...
    :param max_poll_interval: ...up to this.
    """

    def __init__(
        self,
        *,
        company_id: str,
        deadline: float,
        started_at: float | None = None,
        datasets: dict[str, str] | None = None,
        data_types: list[str] | None = None,
        synced_after: str | None = None,
        codat_conn_id: str = "codat_default",
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        max_poll_interval: float = DEFAULT_MAX_POLL_INTERVAL,
    ) -> None:
        super().__init__()
        self.spec = WaitSpec(
            company_id=str(company_id),
            datasets={str(k): str(v) for k, v in datasets.items()} if datasets is not None else None,
            data_types=[str(t) for t in data_types] if data_types is not None else None,
            synced_after=str(synced_after) if synced_after is not None else None,
        )
        self.deadline = float(deadline)
        self.started_at = float(started_at) if started_at is not None else waiting.CLOCK.now()
        self.codat_conn_id = str(codat_conn_id)
        self.poll_interval = float(poll_interval)
        self.max_poll_interval = float(max_poll_interval)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                **self.spec.to_json(),
                "deadline": self.deadline,
                "started_at": self.started_at,
                "codat_conn_id": self.codat_conn_id,
                "poll_interval": self.poll_interval,
                "max_poll_interval": self.max_poll_interval,
            },
        )

    def _hook(self):
        from airflow_provider_codat.hooks.codat import CodatHook

        return CodatHook(codat_conn_id=self.codat_conn_id)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = self._hook()
        try:
            event = await self._wait(hook)
        finally:
            try:
                await hook.aclose()
            except Exception:  # closing must never replace the event
                self.log.debug("Closing the Codat hook failed", exc_info=True)
        yield TriggerEvent(event)

    async def _wait(self, hook) -> dict[str, Any]:
        """Poll until a verdict; return the one event payload. Cancellation (a triggerer stop) propagates."""
        spec = self.spec
        watcher = SyncWatcher(spec)
        pending = {t: "Unknown" for t in spec.types}
        last_error = ""
        while True:
            now = waiting.CLOCK.now()
            if now >= self.deadline:
                message = timeout_message(spec.company_id, now - self.started_at, pending)
                if last_error:
                    message += f" Last error from Codat: {last_error}"
                return make_event(
                    "timeout", spec, pending=pending, message=message, waited=now - self.started_at
                )
            try:
                result = await watcher.apoll(hook)
            except Exception as exc:
                if not is_transient(exc):
                    self.log.error("Codat wait for company %s stopped: %s", spec.company_id, exc)
                    return make_event(
                        "error",
                        spec,
                        pending=pending,
                        message=f"{type(exc).__name__}: {exc}",
                        waited=waiting.CLOCK.now() - self.started_at,
                    )
                last_error = str(exc)
                self.log.warning("Codat did not answer this poll (%s); trying again at the next one.", exc)
            else:
                last_error = ""
                if result.done:
                    return self._verdict(result.outcomes, waiting.CLOCK.now() - self.started_at)
                pending = result.pending
                self.log.info(
                    "Waiting for Codat syncs of company %s: %s", spec.company_id, pending_description(pending)
                )
            now = waiting.CLOCK.now()
            delay = next_interval(self.poll_interval, self.max_poll_interval, now - self.started_at)
            await waiting.CLOCK.asleep(min(delay, max(0.0, self.deadline - now)))

    def _verdict(self, outcomes: dict[str, dict], waited: float) -> dict[str, Any]:
        summary = summarize(outcomes)
        if summary.succeeded:
            return make_event("success", self.spec, outcomes=outcomes, waited=waited)
        return make_event(
            "failed",
            self.spec,
            outcomes=outcomes,
            message=summary.failure_message(self.spec.company_id),
            waited=waited,
        )
