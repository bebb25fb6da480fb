"""What every Codat operator and sensor shares: the connection and its lazily made hook, the test for a value
still to be rendered, and the waiting operators' pace and ``deferrable``.

The wait's settings have one set of names everywhere: ``poll_interval`` (the first interval, seconds; it
doubles), ``max_poll_interval`` (its cap) and ``timeout`` (how long the wait may take). Sensors keep Airflow's
own ``poke_interval`` and ``timeout``.
"""

from __future__ import annotations

from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_codat.defaults import DEFAULT_CONN_ID
from airflow_provider_codat.links import CodatCompanyLink
from airflow_provider_codat.sync.interval import DEFAULT_MAX_POLL_INTERVAL, DEFAULT_POLL_INTERVAL
from airflow_provider_codat.sync.ticket import to_seconds
from airflow_provider_codat.version_compat import conf

if TYPE_CHECKING:
    from airflow_provider_codat.hooks.codat import CodatHook

DEFAULT_TIMEOUT = timedelta(hours=6)


def is_template(value: Any) -> bool:
    """``value`` is still to be rendered (a Jinja template), so it cannot be checked before the task runs.

    :param value: an operator argument as the DAG file gave it.
    """
    return isinstance(value, str) and ("{{" in value or "{%" in value)


class CodatHookMixin:
    """The hook of ``self.codat_conn_id``, made on first use (never at DAG parse time), once per task."""

    codat_conn_id: str = DEFAULT_CONN_ID

    @cached_property
    def hook(self) -> CodatHook:
        from airflow_provider_codat.hooks.codat import CodatHook

        return CodatHook(codat_conn_id=self.codat_conn_id)


class CodatWaitingOperator(CodatHookMixin, BaseOperator):
    """The base of the operators that wait for Codat syncs (the refresh operators, the company sync): the
    connection, the pace of the wait, ``deferrable``, the hook.

    :param codat_conn_id: the Airflow connection id.
    :param poll_interval: first interval of the wait, seconds (doubles each poll).
    :param max_poll_interval: the interval's cap, seconds.
    :param timeout: how long the wait may take (default 6 hours).
    :param deferrable: wait in the triggerer, freeing the worker slot.
    """

    operator_extra_links = (CodatCompanyLink(),)

    def __init__(
        self,
        *,
        codat_conn_id: str = DEFAULT_CONN_ID,
        poll_interval: timedelta | float = DEFAULT_POLL_INTERVAL,
        max_poll_interval: timedelta | float = DEFAULT_MAX_POLL_INTERVAL,
        timeout: timedelta | float = DEFAULT_TIMEOUT,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.codat_conn_id = codat_conn_id
        self.poll_interval = to_seconds(poll_interval, "poll_interval")
        self.max_poll_interval = max(self.poll_interval, to_seconds(max_poll_interval, "max_poll_interval"))
        self.timeout = to_seconds(timeout, "timeout")
        self.deferrable = deferrable
