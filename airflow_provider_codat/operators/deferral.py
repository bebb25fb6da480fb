"""The one way a task hands a wait to the triggerer, and finds what it deferred with when it resumes.

:func:`defer_wait` defers to :class:`~airflow_provider_codat.triggers.sync.CodatSyncTrigger` carrying on the
same :class:`~airflow_provider_codat.sync.wait.Wait` (deadline, start, pace), with a task-side timeout that
outlives the trigger's own deadline by :data:`~airflow_provider_codat.defaults.DEFERRAL_GRACE`.
:func:`resumed_value` gives back what the task deferred with: from ``next_kwargs``, else from its XCom backup
(``airflow dags test`` keeps only the trigger's event), else a clear error. :func:`defer_until_quota_resets`
parks a task whose requests Codat's daily quota can no longer pay for until just after the quota resets.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from airflow_provider_codat.defaults import DEFERRAL_GRACE
from airflow_provider_codat.errors import CodatError, CodatQuotaExhaustedError
from airflow_provider_codat.sync.interval import CLOCK
from airflow_provider_codat.triggers.sync import CodatSyncTrigger

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context

    from airflow_provider_codat.sync.wait import Wait

# Resume a little after the quota resets, spread so that a portfolio's parked tasks do not all ask at the same
# second: over a tenth of the time left until the reset, from one second up to a minute.
QUOTA_RESUME_SPREAD = (1.0, 60.0)


def resume_moment(resets_at: float, now: float) -> datetime:
    """When a task parked for the quota resumes: after ``resets_at``, spread as :data:`QUOTA_RESUME_SPREAD`."""
    low, high = QUOTA_RESUME_SPREAD
    spread = min(high, max(low, (resets_at - now) / 10))
    return datetime.fromtimestamp(resets_at + random.uniform(low, spread), UTC)


def defer_wait(
    task: BaseOperator,
    context: Context,
    wait: Wait,
    *,
    method_name: str = "execute_complete",
    kwargs: dict[str, Any] | None = None,
    backup_key: str | None = None,
) -> NoReturn:
    """Defer ``task`` to the trigger that carries on ``wait``; ``method_name`` resumes it with the event.

    :param task: the deferring task (its ``codat_conn_id`` goes to the trigger).
    :param context: the task's context (its ``ti`` pushes the backup).
    :param wait: the wait to carry on.
    :param method_name: the task's method called with the trigger's event.
    :param kwargs: handed back to ``method_name`` (plain JSON only: ``next_kwargs`` refuses value types).
    :param backup_key: also push the first value of ``kwargs`` to this XCom key, for runners that keep only the
        trigger's event.
    :raises TaskDeferred: always (that is how a task defers).
    """
    _back_up(context, kwargs, backup_key)
    task.defer(
        trigger=CodatSyncTrigger.for_wait(wait, task.codat_conn_id),
        method_name=method_name,
        kwargs=kwargs,
        timeout=timedelta(seconds=max(0.0, wait.deadline - CLOCK.now())) + DEFERRAL_GRACE,
    )


def resumed_value(task: BaseOperator, context: Context, value: Any, *, backup_key: str, what: str) -> dict:
    """What ``task`` deferred with: ``value`` (from ``next_kwargs``), else its XCom backup under ``backup_key``.

    :param what: what the value is, named in the error (``"ticket"``).
    :raises CodatError: when neither holds a dict.
    """
    if value is None:
        ti = context["ti"]
        value = ti.xcom_pull(task_ids=task.task_id, key=backup_key, map_indexes=getattr(ti, "map_index", -1))
    if not isinstance(value, dict):
        raise CodatError(f"{type(task).__name__} resumed without its {what} (XCom {backup_key}).")
    return value


def defer_until_quota_resets(
    task: BaseOperator,
    context: Context,
    error: CodatQuotaExhaustedError,
    *,
    method_name: str,
    kwargs: dict[str, Any] | None = None,
    backup_key: str | None = None,
) -> NoReturn:
    """Defer ``task`` until just after Codat resets its daily quota; ``method_name`` resumes it then.

    The worker slot is free meanwhile. When Codat did not say when the quota resets, ``error`` is raised.

    :param error: the refusal (its ``resets_at`` says when).
    :param method_name: the task's method to call after the reset (with ``event`` and ``kwargs``).
    :param kwargs: handed back to ``method_name`` (plain JSON only).
    :param backup_key: also push the first value of ``kwargs`` to this XCom key (see :func:`defer_wait`).
    :raises TaskDeferred: when the reset time is known.
    """
    from airflow.providers.standard.triggers.temporal import DateTimeTrigger

    if error.resets_at is None:
        raise error
    moment = resume_moment(error.resets_at, time.time())
    task.log.warning("%s Deferring until %s.", error.message, moment.isoformat())
    _back_up(context, kwargs, backup_key)
    task.defer(trigger=DateTimeTrigger(moment=moment), method_name=method_name, kwargs=kwargs)


def _back_up(context: Context, kwargs: dict[str, Any] | None, backup_key: str | None) -> None:
    # The first value is what the task resumes from; others (its requests so far) may be lost with the kwargs.
    if backup_key is not None:
        value = next(iter((kwargs or {}).values()))
        context["ti"].xcom_push(key=backup_key, value=value)


class ResumesAfterQuotaReset:
    """For operators that start over once the quota resets (what they commit, they commit once)."""

    def execute_after_quota_reset(self, context: Context, event: Any = None) -> Any:
        """Run the task again now that Codat's daily quota has reset."""
        return self.execute(context)
