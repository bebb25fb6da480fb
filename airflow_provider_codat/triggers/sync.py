"""CodatSyncTrigger: wait for Codat syncs in the triggerer (the async driver of :class:`~.sync.wait.Wait`)."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_codat.budget.usage import EVENT_KEY, counting_apart
from airflow_provider_codat.defaults import DEFAULT_CONN_ID
from airflow_provider_codat.errors import CodatValidationError
from airflow_provider_codat.sync.interval import (
    CLOCK,
    DEFAULT_MAX_POLL_INTERVAL,
    DEFAULT_POLL_INTERVAL,
    spread,
)
from airflow_provider_codat.sync.ticket import WaitSpec
from airflow_provider_codat.sync.wait import Wait, arun, error_event

# Airflow's scheduler can fail a deferred task whose trigger fires before it has processed the executor's report
# that the deferring worker exited ("finished with state success, but the task instance's state attribute is
# queued": apache/airflow#66374, #67287, #72716; fixed for some states in 3.2.2 and 3.3, not for all). So the
# trigger fires no sooner than this after it starts. `airflow dags test` has no scheduler to race: it sets 0.
RESUME_SETTLE_ENV = "CODAT_TRIGGER_SETTLE_SECONDS"
DEFAULT_RESUME_SETTLE = 10.0


def resume_settle() -> float:
    """Seconds a trigger holds its event after starting (``CODAT_TRIGGER_SETTLE_SECONDS``, default 10)."""
    value = os.environ.get(RESUME_SETTLE_ENV, "")
    try:
        return max(0.0, float(value)) if value else DEFAULT_RESUME_SETTLE
    except ValueError:
        return DEFAULT_RESUME_SETTLE


class CodatSyncTrigger(BaseTrigger):
    """Poll one company's ``dataStatus`` until every awaited type is finished; fire exactly one event.

    Every keyword is plain JSON and nothing is secret (the connection id, never the key). The deadline is an
    absolute wall-clock time, and the interval is derived from ``started_at``, so a trigger rebuilt from
    :meth:`serialize` after a triggerer restart resumes the same wait: same deadline, same pace. The task polled
    once before deferring, so the first poll here comes one to two intervals after ``started_at`` (at once after
    a restart that came later than that), and each later interval is stretched by up to a quarter, by amounts
    fixed per wait, so that waits deferred together do not poll together. The event is held until the trigger
    has run for :func:`resume_settle` seconds (10), so the scheduler has seen the worker exit. All waits of one
    connection in a triggerer share one HTTP client and its connections.

    The kwargs are parsed once, when the trigger is built, into a checked :class:`~.sync.ticket.WaitSpec`
    (company and dataset ids UUIDs, types in the catalogue); bad ones end the wait, before any request, with an
    ``error`` event that names what is wrong. :meth:`serialize` gives them back as plain JSON.

    The event's payload: ``status`` (``success``, ``failed``, ``timeout`` or ``error``), ``company_id``,
    ``outcomes`` (type -> ``{status, dataset_id, last_successful_sync, error_message}``), ``pending``
    (type -> status, for a timeout), ``message``, ``waited_seconds`` and, for an error, ``error_type``.

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
        codat_conn_id: str = DEFAULT_CONN_ID,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        max_poll_interval: float = DEFAULT_MAX_POLL_INTERVAL,
    ) -> None:
        super().__init__()
        given = {
            "company_id": company_id,
            "datasets": datasets,
            "data_types": data_types,
            "synced_after": synced_after,
        }
        # Parsed once, here; a bad value is kept (with its error) to become the error event of run(), not a crash.
        self.spec: WaitSpec | None = None
        self.invalid: CodatValidationError | None = None
        try:
            self.spec = WaitSpec(**given)
        except CodatValidationError as exc:
            self.invalid = exc
        self.wait_kwargs = self.spec.to_json() if self.spec is not None else _plain(given)
        self.deadline = float(deadline)
        self.started_at = float(started_at) if started_at is not None else CLOCK.now()
        self.codat_conn_id = str(codat_conn_id)
        self.poll_interval = float(poll_interval)
        self.max_poll_interval = float(max_poll_interval)

    @classmethod
    def for_wait(cls, wait: Wait, codat_conn_id: str) -> CodatSyncTrigger:
        """The trigger that carries on ``wait`` (same spec, deadline, start and pace) in the triggerer."""
        return cls(
            **vars(wait.spec),  # checked values: parsing them again is free
            deadline=wait.deadline,
            started_at=wait.started_at,
            codat_conn_id=codat_conn_id,
            poll_interval=wait.poll_interval,
            max_poll_interval=wait.max_poll_interval,
        )

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                **self.wait_kwargs,
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
        settled_at = CLOCK.now() + resume_settle()  # see RESUME_SETTLE_ENV
        async for event in self._wait():
            await CLOCK.asleep(max(0.0, settled_at - CLOCK.now()))
            yield event

    async def _wait(self) -> AsyncIterator[TriggerEvent]:
        # The task polled just before deferring: the first poll here comes one to two intervals after the
        # start, at a point fixed per wait, so that a thousand waits deferred together spread over a whole
        # interval instead of polling in one burst. Nothing else is done before: the triggerer's loop stays free.
        waited = CLOCK.now() - self.started_at
        if waited < self.poll_interval:
            seed = json.dumps(self.wait_kwargs, sort_keys=True, default=str)
            first = spread(self.poll_interval, seed, 0, fraction=1.0)
            await CLOCK.asleep(max(0.0, min(first - waited, self.deadline - CLOCK.now())))
        if self.spec is None:
            company_id = str(self.wait_kwargs["company_id"])[:64]
            yield TriggerEvent(error_event(company_id, self.invalid, {}, CLOCK.now() - self.started_at))
            return
        wait = Wait(
            self.spec,
            deadline=self.deadline,
            started_at=self.started_at,
            poll_interval=self.poll_interval,
            max_poll_interval=self.max_poll_interval,
            spread_polls=True,
            logger=self.log,
        )
        hook = self._hook()
        try:
            with counting_apart() as requests:  # for the health page: the resumed task reports them
                event = await arun(wait, hook)
            event = {**event, EVENT_KEY: {str(minute): n for minute, n in requests.items()}}
        finally:
            try:
                await hook.aclose()
            except Exception:  # giving the client back must never replace the event
                self.log.debug("Closing the Codat hook failed", exc_info=True)
        yield TriggerEvent(event)


def _plain(value: Any) -> Any:
    """``value`` with every string a plain ``str`` (trigger kwargs refuse ``str`` subclasses)."""
    if isinstance(value, str):
        return str(value)
    if isinstance(value, dict):
        return {_plain(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value
