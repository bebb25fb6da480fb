"""The one way a task hands a wait to the triggerer, and finds what it deferred with when it resumes.

:func:`defer_wait` defers to :class:`~airflow_provider_codat.triggers.sync.CodatSyncTrigger` carrying on the
same :class:`~airflow_provider_codat.sync.wait.Wait` (deadline, start, pace), with a task-side timeout that
outlives the trigger's own deadline by :data:`~airflow_provider_codat.defaults.DEFERRAL_GRACE`.
:func:`resumed_value` gives back what the task deferred with: from ``next_kwargs``, else from its XCom backup
(``airflow dags test`` keeps only the trigger's event), else a clear error.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from airflow_provider_codat.defaults import DEFERRAL_GRACE
from airflow_provider_codat.errors import CodatError
from airflow_provider_codat.sync.interval import CLOCK
from airflow_provider_codat.triggers.sync import CodatSyncTrigger

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context

    from airflow_provider_codat.sync.wait import Wait


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
    :param backup_key: also push the one value of ``kwargs`` to this XCom key, for runners that keep only the
        trigger's event.
    :raises TaskDeferred: always (that is how a task defers).
    """
    if backup_key is not None:
        (value,) = (kwargs or {}).values()
        context["ti"].xcom_push(key=backup_key, value=value)
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
