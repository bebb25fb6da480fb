"""CodatSyncSensor: wait for exactly the Codat syncs a refresh queued (or for syncs after a moment)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_provider_codat.defaults import DEFAULT_CONN_ID
from airflow_provider_codat.errors import CodatSyncTimeoutError
from airflow_provider_codat.links import CodatCompanyLink, push_company_link
from airflow_provider_codat.operators.base import CodatHookMixin
from airflow_provider_codat.operators.deferral import defer_wait
from airflow_provider_codat.sync.interval import CLOCK, DEFAULT_MAX_POLL_INTERVAL, DEFAULT_POLL_INTERVAL
from airflow_provider_codat.sync.ticket import WaitSpec, iso_utc, normalize_data_types, to_seconds
from airflow_provider_codat.sync.wait import Wait, resolve_event
from airflow_provider_codat.timestamps import parse_timestamp
from airflow_provider_codat.version_compat import AirflowSensorTimeout, conf

if TYPE_CHECKING:
    from airflow.sdk import Context


class CodatSyncSensor(CodatHookMixin, BaseSensorOperator):
    """Wait until the awaited Codat syncs of one company have finished; fail with Codat's messages if any failed.

    Pass either the ``ticket`` a refresh operator returned (it names the datasets to wait for, so a sync that
    finished before the refresh never counts), or ``company_id`` + ``data_types`` + ``synced_after`` (a type is
    done when ``lastSuccessfulSync >= synced_after`` and no sync of it is running). Either is checked in full
    (company and dataset ids UUIDs, data types in the catalogue) before any request.

    Each poke makes one ``dataStatus`` call whatever the number of types, plus ``data/history/{id}`` only for a
    type whose ``dataStatus`` entry no longer names the awaited dataset (or to read Codat's ``errorMessage`` of
    a failed sync). ``NotSupported`` is logged as a warning and does not fail the sensor. Returns (XCom) per
    type ``{status, dataset_id, last_successful_sync, error_message}``.

    A real ``BaseSensorOperator``: ``mode`` (``poke``, ``reschedule``), ``timeout``, ``soft_fail``,
    ``silent_fail`` and ``never_fail`` behave as Airflow documents. ``exponential_backoff`` is on by default
    here, with the provider's pace: the interval doubles from ``poke_interval`` up to ``max_wait``
    (5, 10, 20 ... 300 s), a function of the time waited so it carries over reschedules; with
    ``exponential_backoff=False`` every poke is ``poke_interval`` apart. ``deferrable=True`` checks once in
    ``execute``, then defers to :class:`~airflow_provider_codat.triggers.sync.CodatSyncTrigger` with the same
    absolute deadline and pace. A transient error (no answer, 408, 429, 5xx, after the hook's own retries)
    costs one poke, never more than the time left; anything else fails the poke.

    :param ticket: a refresh operator's return value (templated; an ``XComArg`` works).
    :param company_id: the company, without a ticket (templated).
    :param data_types: the types to wait for; with a ticket, limits the wait to these (templated).
    :param synced_after: without a ticket, the ISO UTC moment (or datetime) a successful sync must be at or
        after (templated, e.g. ``"{{ data_interval_end }}"``).
    :param codat_conn_id: the Airflow connection id.
    :param poke_interval: the first interval in seconds (default 5).
    :param exponential_backoff: let the interval double (default True).
    :param max_wait: the interval's cap (default 300 s).
    :param max_poke_interval: the former name of ``max_wait``.
    :param fail_on_error: raise when a type failed (default); False returns the outcomes instead.
    :param deferrable: wait in the triggerer (default: ``[operators] default_deferrable``).
    """

    template_fields: Sequence[str] = ("ticket", "company_id", "data_types", "synced_after")
    operator_extra_links = (CodatCompanyLink(),)
    ui_color = "#d8e8f7"

    def __init__(
        self,
        *,
        ticket: dict[str, Any] | str | None = None,
        company_id: str | None = None,
        data_types: Sequence[str] | str | None = None,
        synced_after: Any = None,
        codat_conn_id: str = DEFAULT_CONN_ID,
        poke_interval: timedelta | float = DEFAULT_POLL_INTERVAL,
        exponential_backoff: bool = True,
        max_wait: timedelta | float | None = None,
        max_poke_interval: timedelta | float | None = None,
        fail_on_error: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        if max_wait is None:
            max_wait = DEFAULT_MAX_POLL_INTERVAL if max_poke_interval is None else max_poke_interval
        super().__init__(
            poke_interval=poke_interval, exponential_backoff=exponential_backoff, max_wait=max_wait, **kwargs
        )
        if ticket is None and company_id is None:
            raise ValueError(
                "CodatSyncSensor needs a ticket, or company_id with data_types and synced_after."
            )
        if ticket is None and (data_types is None or synced_after is None):
            raise ValueError(
                "Without a ticket, CodatSyncSensor needs data_types and synced_after: a bare 'latest sync "
                "is Complete' check would pass on a sync that finished before your refresh."
            )
        self.ticket = ticket
        self.company_id = company_id
        self.data_types = data_types
        self.synced_after = synced_after
        self.codat_conn_id = codat_conn_id
        self.max_poke_interval = to_seconds(self.max_wait, "max_wait")
        self.fail_on_error = fail_on_error
        self.deferrable = deferrable
        self._wait: Wait | None = None

    def wait_spec(self) -> WaitSpec:
        """What to wait for, from the (rendered) arguments, checked in full.

        :raises CodatValidationError: naming what is wrong, before any request.
        """
        if self.ticket is not None:
            return WaitSpec.from_ticket(self.ticket, self.data_types)
        return WaitSpec(
            company_id=self.company_id,
            data_types=normalize_data_types(self.data_types),
            synced_after=iso_utc(self.synced_after),
        )

    def _start(self, context: Context, spec: WaitSpec) -> Wait:
        """The wait, with the deadline Airflow's own timeout check uses: from the first try's first reschedule in
        reschedule mode, from now otherwise."""
        started = CLOCK.now()
        if self.reschedule and context.get("ti") is not None:
            first = context["ti"].get_first_reschedule_date(context)
            if first is not None:
                started = parse_timestamp(first).timestamp()  # a naive one is UTC, not this machine's zone
        cap = self.max_poke_interval if self.exponential_backoff else self.poke_interval
        return Wait(
            spec,
            deadline=started + self.timeout,
            started_at=started,
            poll_interval=self.poke_interval,
            max_poll_interval=cap or self.poke_interval,
            logger=self.log,
        )

    def execute(self, context: Context) -> Any:
        spec = self.wait_spec()
        push_company_link(context, self.hook, spec.company_id)
        if not spec.types:
            self.log.warning(
                "The ticket names no datasets for company %s: nothing to wait for.", spec.company_id
            )
            return {}
        self._wait = self._start(context, spec)
        if self.deferrable:
            return self._check_then_defer(context)
        try:
            return super().execute(context)
        except AirflowSensorTimeout as exc:
            if isinstance(exc, CodatSyncTimeoutError):
                raise
            raise self._wait.timeout_error() from exc  # Airflow's own check: say what is still running

    def _check_then_defer(self, context: Context) -> Any:
        """Deferrable mode, as the dbt Cloud and Airbyte sensors do it: one check here, then the triggerer."""
        result = self.poke(context)
        if result:
            return result.xcom_value
        defer_wait(self, context, self._wait)

    def poke(self, context: Context) -> PokeReturnValue:
        """One check: one ``dataStatus`` call (plus history only where needed), bounded by the deadline."""
        if self._wait is None:  # poke() called on its own
            self._wait = self._start(context, self.wait_spec())
        if self._wait.expired():
            raise self._wait.timeout_error()  # no request past the deadline
        event = self._wait.poke(self.hook)
        if event is None:
            return PokeReturnValue(False)
        return PokeReturnValue(True, self._resolve(event))

    def _get_next_poke_interval(self, started_at, run_duration, poke_count) -> float:
        """With ``exponential_backoff``, the provider's pace (doubling up to ``max_wait``, never past the
        deadline); otherwise Airflow's."""
        if not self.exponential_backoff or self._wait is None:
            return super()._get_next_poke_interval(started_at, run_duration, poke_count)
        delay = self._wait.next_delay()
        self.log.info("Next check of company %s in %.0f s", self._wait.spec.company_id, delay)
        return delay

    def _resolve(self, event: dict[str, Any] | None) -> dict[str, dict]:
        return resolve_event(event, fail_on_error=self.fail_on_error, logger=self.log)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, dict]:
        """Resume after the trigger: return the outcomes on success, raise on anything else."""
        return self._resolve(event)
