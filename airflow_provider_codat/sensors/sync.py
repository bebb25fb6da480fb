"""CodatSyncSensor: wait for exactly the Codat syncs a refresh queued (or for syncs after a moment)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue, conf
from airflow.sdk.exceptions import AirflowSensorTimeout, AirflowSkipException

from airflow_provider_codat import waiting
from airflow_provider_codat.links import CodatCompanyLink, push_company_link
from airflow_provider_codat.safe_repr import shorten
from airflow_provider_codat.wait_task import (
    SyncWaitMixin,
    iso_utc,
    normalize_data_types,
    parse_ticket,
    to_seconds,
)
from airflow_provider_codat.waiting import DEFAULT_MAX_POLL_INTERVAL, DEFAULT_POLL_INTERVAL, WaitSpec

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_codat.hooks.codat import CodatHook


class CodatSyncSensor(SyncWaitMixin, BaseSensorOperator):
    """Wait until the awaited Codat syncs of one company have finished; fail with Codat's messages if any failed.

    Pass either the ``ticket`` a refresh operator returned (it names the datasets to wait for, so a sync that
    finished before the refresh never counts), or ``company_id`` + ``data_types`` + ``synced_after`` (a type is
    done when ``lastSuccessfulSync >= synced_after`` and no sync of it is running).

    Each poke makes one ``dataStatus`` call whatever the number of types, plus ``data/history/{id}`` only for a
    type whose ``dataStatus`` entry no longer names the awaited dataset (or to read Codat's ``errorMessage`` of
    a failed sync). The interval doubles from ``poke_interval`` up to ``max_poke_interval``. ``NotSupported``
    is logged as a warning and does not fail the sensor. Returns (XCom) per type
    ``{status, dataset_id, last_successful_sync, error_message}``.

    Modes: ``poke``, ``reschedule`` and ``deferrable`` (checks once, then defers to
    :class:`~airflow_provider_codat.triggers.sync.CodatSyncTrigger`). ``timeout`` is measured from the first
    check, as an absolute deadline that survives reschedules and triggerer restarts.

    :param ticket: a refresh operator's return value (templated; an ``XComArg`` works).
    :param company_id: the company, without a ticket (templated).
    :param data_types: the types to wait for; with a ticket, limits the wait to these (templated).
    :param synced_after: without a ticket, the ISO UTC moment (or datetime) a successful sync must be at or
        after (templated, e.g. ``"{{ data_interval_end }}"``).
    :param codat_conn_id: the Airflow connection id.
    :param poke_interval: the first interval in seconds (default 5).
    :param max_poke_interval: the interval's cap in seconds (default 300).
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
        codat_conn_id: str = "codat_default",
        poke_interval: timedelta | float = DEFAULT_POLL_INTERVAL,
        max_poke_interval: timedelta | float = DEFAULT_MAX_POLL_INTERVAL,
        fail_on_error: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, **kwargs)
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
        self.max_poke_interval = to_seconds(max_poke_interval, "max_poke_interval")
        self.fail_on_error = fail_on_error
        self.deferrable = deferrable
        self._watcher: waiting.SyncWatcher | None = None

    @cached_property
    def hook(self) -> CodatHook:
        from airflow_provider_codat.hooks.codat import CodatHook

        return CodatHook(codat_conn_id=self.codat_conn_id)

    def wait_spec(self) -> WaitSpec:
        """What to wait for, from the (rendered) arguments."""
        if self.ticket is not None:
            ticket = parse_ticket(self.ticket)
            datasets = {str(k): str(v) for k, v in ticket["datasets"].items()}
            if self.data_types is not None:
                wanted = normalize_data_types(self.data_types)
                missing = [t for t in wanted if t not in datasets]
                if missing:
                    raise ValueError(
                        f"The ticket has no dataset for {', '.join(missing)}; it covers {shorten(sorted(datasets), 300)}."
                    )
                datasets = {t: datasets[t] for t in wanted}
            return WaitSpec(company_id=str(ticket["company_id"]), datasets=datasets)
        return WaitSpec(
            company_id=str(self.company_id),
            data_types=normalize_data_types(self.data_types),
            synced_after=iso_utc(self.synced_after),
        )

    def poke(self, context: Context) -> PokeReturnValue:
        """One check (one ``dataStatus`` call, plus history only where needed)."""
        if self._watcher is None:
            self._watcher = waiting.SyncWatcher(self.wait_spec())
        result = self._watcher.poll(self.hook)
        if not result.done:
            return PokeReturnValue(False)
        return PokeReturnValue(True, self._judge(result.outcomes, self._watcher.spec.company_id))

    def execute(self, context: Context) -> dict[str, dict]:
        spec = self.wait_spec()
        push_company_link(context, self.hook, spec.company_id)
        if not spec.types:
            self.log.warning(
                "The ticket names no datasets for company %s: nothing to wait for.", spec.company_id
            )
            return {}
        try:
            outcomes = self._wait_for(
                context,
                self.hook,
                spec,
                codat_conn_id=self.codat_conn_id,
                poll_interval=self.poke_interval,
                max_poll_interval=max(self.poke_interval, self.max_poke_interval),
                timeout=self.timeout,
                deferrable=self.deferrable,
                reschedule=self.reschedule,
            )
        except AirflowSensorTimeout as exc:
            if self.soft_fail or self.never_fail:
                raise AirflowSkipException(f"Skipping (soft_fail/never_fail): {exc}") from exc
            raise
        return self._judge(outcomes, spec.company_id)

    def _judge(self, outcomes: dict[str, dict], company_id: str) -> dict[str, dict]:
        return waiting.finish(company_id, outcomes, fail_on_error=self.fail_on_error, logger=self.log)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, dict]:
        """Resume after the trigger: return the outcomes on success, raise on anything else."""
        return self._resolve_event(event, fail_on_error=self.fail_on_error)
