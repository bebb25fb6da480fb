"""The task side of a wait, shared by CodatSyncSensor and the refresh operators: deadline, poke/reschedule/defer.

Also the argument helpers those tasks share (templated data types and tickets arrive as strings sometimes).
"""

from __future__ import annotations

import ast
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk.exceptions import AirflowRescheduleException, AirflowSensorTimeout

from airflow_provider_codat import waiting
from airflow_provider_codat.datatypes import get_data_type
from airflow_provider_codat.safe_repr import shorten
from airflow_provider_codat.waiting import SyncTimeout, SyncWatcher, WaitSpec

# The task-side backstop on a deferral outlives the trigger's own deadline by this much: the trigger is the one
# that times out (with a message naming the running types); this only catches a trigger that never answers.
DEFERRAL_GRACE = timedelta(minutes=5)


def to_seconds(value: timedelta | float | int | None, what: str) -> float | None:
    if value is None:
        return None
    try:
        seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    except (TypeError, ValueError, OverflowError):
        # float()'s own message repeats the whole input.
        raise ValueError(
            f"{what} must be a number of seconds or a timedelta, got {shorten(value)}."
        ) from None
    if seconds < 0:
        raise ValueError(f"{what} must not be negative, got {shorten(value)}.")
    return seconds


def _literal(value: str) -> Any:
    text = value.strip()
    if text[:1] in "[{(":
        try:
            return json.loads(text)
        except ValueError:
            return ast.literal_eval(text)
    return text


def normalize_data_types(value: Any, *, required: bool = True) -> list[str] | None:
    """A list of catalogue keys from a list, a tuple, a comma-separated string or a rendered list literal.

    :raises UnknownDataTypeError: for a key not in the catalogue (before any request).
    """
    if isinstance(value, str):
        value = _literal(value)
        if isinstance(value, str):
            value = [part for part in (p.strip() for p in value.split(",")) if part]
    if value is None or (not value and not required):
        if required:
            raise ValueError("data_types is required: name at least one data type.")
        return None
    if not isinstance(value, list | tuple | set | frozenset):
        raise ValueError(f"data_types must be a list of data type keys, got {shorten(value)}.")
    keys: list[str] = []
    for item in value:
        key = get_data_type(str(item)).key
        if key not in keys:
            keys.append(key)
    if required and not keys:
        raise ValueError("data_types is required: name at least one data type.")
    return keys


def parse_ticket(value: Any) -> dict[str, Any]:
    """A ticket dict from a dict or its JSON / repr string (a template rendered without native objects)."""
    if isinstance(value, str):
        value = _literal(value)
    if (
        not isinstance(value, dict)
        or not value.get("company_id")
        or not isinstance(value.get("datasets"), dict)
    ):
        raise ValueError(
            "ticket must be what a Codat refresh operator returns: {company_id, requested_at, datasets, "
            f"joined}}; got {shorten(value)}."
        )
    return value


def iso_utc(value: Any) -> str | None:
    """Normalise a datetime or an ISO string to ISO UTC (``...Z``); ``None`` stays ``None``."""
    from airflow_provider_codat.sync_status import format_timestamp, parse_timestamp

    if value is None or value == "":
        return None
    moment = parse_timestamp(value)
    if moment is None:
        raise ValueError(f"Not an ISO 8601 date-time: {shorten(value)}.")
    return format_timestamp(moment)


def utcnow_iso() -> str:
    return datetime.fromtimestamp(waiting.CLOCK.now(), tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class SyncWaitMixin:
    """Wait for a :class:`WaitSpec` from a task: poll once, then defer, reschedule or poll in place.

    The deadline is absolute (epoch seconds), computed once: at the first execute (poke and deferrable modes),
    or from the first reschedule of the try (reschedule mode), and handed to the trigger as is.
    """

    timeout_exception: type[Exception] = AirflowSensorTimeout

    def _wait_window(self, context, timeout: float, *, reschedule: bool) -> tuple[float, float]:
        started = waiting.CLOCK.now()
        if reschedule and context is not None and context.get("ti") is not None:
            first = context["ti"].get_first_reschedule_date(context)
            if first is not None:
                started = first.timestamp()
        return started, started + timeout

    def _wait_for(
        self,
        context,
        hook,
        spec: WaitSpec,
        *,
        codat_conn_id: str,
        poll_interval: float,
        max_poll_interval: float,
        timeout: float,
        deferrable: bool,
        reschedule: bool = False,
        method_name: str = "execute_complete",
        next_kwargs: dict[str, Any] | None = None,
    ) -> dict[str, dict]:
        """Return the outcomes once every type is finished (judging them is the caller's job).

        :raises TaskDeferred: in deferrable mode while types are running.
        :raises AirflowRescheduleException: in reschedule mode while types are running.
        """
        started, deadline = self._wait_window(context, timeout, reschedule=reschedule)
        watcher = SyncWatcher(spec)
        now = waiting.CLOCK.now()
        if now >= deadline:
            raise self.timeout_exception(
                waiting.timeout_message(spec.company_id, now - started, {t: "Unknown" for t in spec.types})
            )
        result = waiting.poll_tolerant(watcher, hook, self.log)
        if result is not None and result.done:
            return result.outcomes
        pending = result.pending if result is not None else {t: "Unknown" for t in spec.types}
        self.log.info(
            "Waiting for Codat syncs of company %s: %s",
            spec.company_id,
            ", ".join(f"{k} ({v})" for k, v in sorted(pending.items())),
        )
        if deferrable:
            from airflow_provider_codat.triggers.sync import CodatSyncTrigger

            trigger = CodatSyncTrigger(
                **spec.to_json(),
                deadline=deadline,
                started_at=started,
                codat_conn_id=codat_conn_id,
                poll_interval=poll_interval,
                max_poll_interval=max_poll_interval,
            )
            self.defer(
                trigger=trigger,
                method_name=method_name,
                kwargs=next_kwargs,
                timeout=timedelta(seconds=max(0.0, deadline - now)) + DEFERRAL_GRACE,
            )
        if reschedule:
            now = waiting.CLOCK.now()
            if now >= deadline:
                raise self.timeout_exception(waiting.timeout_message(spec.company_id, now - started, pending))
            delay = min(
                waiting.next_interval(poll_interval, max_poll_interval, now - started), deadline - now
            )
            raise AirflowRescheduleException(datetime.now(tz=UTC) + timedelta(seconds=delay))
        try:
            return waiting.wait_blocking(
                hook,
                spec,
                deadline=deadline,
                started_at=started,
                poll_interval=poll_interval,
                max_poll_interval=max_poll_interval,
                watcher=watcher,
                last=result or waiting.PollResult(pending=pending),
                logger=self.log,
            ).outcomes
        except SyncTimeout as exc:
            raise self.timeout_exception(str(exc)) from None

    def _resolve_event(self, event: Any, *, fail_on_error: bool = True) -> dict[str, dict]:
        try:
            return waiting.resolve_event(event, fail_on_error=fail_on_error, logger=self.log)
        except SyncTimeout as exc:
            raise self.timeout_exception(str(exc)) from None
