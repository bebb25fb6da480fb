"""Queue Codat refreshes and return a ticket naming the exact syncs to wait for (the work is in
:mod:`airflow_provider_codat.sync.queueing`; these operators adapt it to Airflow).

A ticket (the operators' XCom ``return_value``)::

    {"company_id": "...", "requested_at": "2026-11-21T10:00:00.000000Z",
     "datasets": {"invoices": "<dataset id>", ...}, "joined": ["payments"]}

``datasets`` names, per data type, the sync this refresh queued or the one already running that it joined;
never a sync that finished before the refresh. With ``wait_for_completion=True`` the ticket also carries
``outcomes`` (per type ``{status, dataset_id, last_successful_sync, error_message}``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_codat.errors import CodatQuotaExhaustedError, CodatSyncTimeoutError
from airflow_provider_codat.links import push_company_link
from airflow_provider_codat.operators.base import CodatWaitingOperator
from airflow_provider_codat.operators.deferral import (
    ResumesAfterQuotaReset,
    defer_until_quota_resets,
    defer_wait,
    resumed_value,
)
from airflow_provider_codat.safe_repr import shorten
from airflow_provider_codat.sync.interval import CLOCK
from airflow_provider_codat.sync.queueing import (
    HISTORY_MARGIN,
    IF_IN_PROGRESS,
    REREAD_ATTEMPTS,
    REREAD_DELAY,
    derive_refreshed,
    queue_data_types,
    refresh_all_data,
)
from airflow_provider_codat.sync.ticket import WaitSpec, normalize_data_types, parse_ticket
from airflow_provider_codat.sync.wait import Wait, resolve_event, run
from airflow_provider_codat.values import CompanyId, ConnectionId

if TYPE_CHECKING:
    from airflow.sdk import Context


__all__ = [
    "CodatQueueDataTypesOperator",
    "CodatRefreshAllDataOperator",
    "CodatSyncTimeout",
    "CodatWaitingOperator",
    "derive_refreshed",
]


TICKET_XCOM_KEY = "codat_ticket"

# The former name: a refresh operator's wait (``wait_for_completion``) passed its ``timeout``.
CodatSyncTimeout = CodatSyncTimeoutError


class _CodatRefreshOperator(ResumesAfterQuotaReset, CodatWaitingOperator):
    """Shared by the refresh operators: the company, the optional wait, ``execute_complete``."""

    ui_color = "#cfe3f5"

    def __init__(self, *, company_id: str, wait_for_completion: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.company_id = company_id
        self.wait_for_completion = wait_for_completion

    def refresh(self, company_id: CompanyId) -> dict[str, Any]:
        """Queue the refresh (the templated arguments parsed here); return the ticket."""
        raise NotImplementedError

    def execute(self, context: Context) -> dict[str, Any]:
        company_id = CompanyId.parse(self.company_id, "company_id")
        push_company_link(context, self.hook, company_id)
        try:
            ticket = self.refresh(company_id)
        except CodatQuotaExhaustedError as exc:
            defer_until_quota_resets(self, context, exc, method_name="execute_after_quota_reset")
        self.log.info(
            "Codat refresh of company %s: waiting for %s (joined: %s)",
            company_id,
            ", ".join(f"{t}={d}" for t, d in sorted(ticket["datasets"].items())) or "nothing",
            ", ".join(ticket["joined"]) or "none",
        )
        if not self.wait_for_completion:
            return ticket
        if not ticket["datasets"]:
            return {**ticket, "outcomes": {}}
        wait = self._wait(company_id, ticket["datasets"])
        if not self.deferrable:
            return {**ticket, "outcomes": resolve_event(run(wait, self.hook), logger=self.log)}
        event = wait.poke(self.hook)
        if event is None:
            defer_wait(self, context, wait, kwargs={"ticket": ticket}, backup_key=TICKET_XCOM_KEY)
        return {**ticket, "outcomes": resolve_event(event, logger=self.log)}

    def _wait(self, company_id: CompanyId, datasets: dict[str, str]) -> Wait:
        now = CLOCK.now()
        return Wait(
            WaitSpec(company_id=company_id, datasets=datasets),
            deadline=now + self.timeout,
            started_at=now,
            poll_interval=self.poll_interval,
            max_poll_interval=self.max_poll_interval,
            logger=self.log,
        )

    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None, ticket: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Resume after the trigger: the ticket with its outcomes, or raise on anything but success."""
        outcomes = resolve_event(event, logger=self.log)
        ticket = resumed_value(self, context, ticket, backup_key=TICKET_XCOM_KEY, what="ticket")
        return {**parse_ticket(ticket), "outcomes": outcomes}


class CodatQueueDataTypesOperator(_CodatRefreshOperator):
    """Queue a sync of each listed data type (one ``data/queue`` call each) and return the ticket.

    A type whose previous sync is still running cannot be queued again: with ``if_in_progress="join"`` the
    running sync named in Codat's error is awaited instead (and listed in ``joined``); with ``"fail"`` the error
    is raised, with the running dataset's id in its message.

    :param company_id: the company (templated).
    :param data_types: catalogue keys (templated; a list or a comma-separated string).
    :param connection_id: queue from this data connection (templated; default: Codat's choice).
    :param if_in_progress: ``"join"`` (default) or ``"fail"``.
    :param wait_for_completion: wait for the syncs, as :class:`CodatSyncSensor` does; ``codat_conn_id``,
        ``poll_interval``, ``max_poll_interval``, ``timeout`` (default 6 hours) and ``deferrable`` as in
        :class:`CodatWaitingOperator`.
    """

    template_fields: Sequence[str] = ("company_id", "data_types", "connection_id")

    def __init__(
        self,
        *,
        company_id: str,
        data_types: Sequence[str] | str,
        connection_id: str | None = None,
        if_in_progress: str = "join",
        **kwargs: Any,
    ) -> None:
        super().__init__(company_id=company_id, **kwargs)
        if if_in_progress not in IF_IN_PROGRESS:
            raise ValueError(f"if_in_progress must be 'join' or 'fail', got {shorten(if_in_progress)}.")
        self.data_types = data_types
        self.connection_id = connection_id
        self.if_in_progress = if_in_progress

    def refresh(self, company_id: CompanyId) -> dict[str, Any]:
        data_types = normalize_data_types(self.data_types)
        connection_id = (
            ConnectionId.parse(self.connection_id, "connection_id") if self.connection_id else None
        )
        return queue_data_types(
            self.hook,
            company_id,
            data_types,
            connection_id=connection_id,
            if_in_progress=self.if_in_progress,
            logger=self.log,
        )


class CodatRefreshAllDataOperator(_CodatRefreshOperator):
    """Queue every *fetch on first link* data type (``data/all``) and return the ticket.

    ``data/all`` answers 204 with no dataset ids, so the ticket is derived from ``dataStatus`` read before and
    after the call: a type whose ``latestSyncId`` changed has a new dataset; a type that was already syncing is
    joined (never taken as done from the older sync). When nothing has appeared yet, ``dataStatus`` is read again
    a few times, then ``data/history`` (syncs requested since the call) fills the gaps.

    :param company_id: the company (templated).
    :param data_types: limit the ticket to these types (templated); a listed type that ``data/all`` did not
        queue is queued on its own.
    :param wait_for_completion: wait for the syncs, as :class:`CodatSyncSensor` does; ``codat_conn_id``,
        ``poll_interval``, ``max_poll_interval``, ``timeout`` (default 6 hours) and ``deferrable`` as in
        :class:`CodatWaitingOperator`.
    """

    template_fields: Sequence[str] = ("company_id", "data_types")

    # Looking again when Codat has not created the datasets yet: bounded, a few seconds in all.
    reread_attempts = REREAD_ATTEMPTS
    reread_delay = REREAD_DELAY
    # data/history is filtered on Codat's clock, not ours: allow for skew between the two.
    history_margin = HISTORY_MARGIN

    def __init__(self, *, company_id: str, data_types: Sequence[str] | str | None = None, **kwargs: Any):
        super().__init__(company_id=company_id, **kwargs)
        self.data_types = data_types

    def refresh(self, company_id: CompanyId) -> dict[str, Any]:
        return refresh_all_data(
            self.hook,
            company_id,
            normalize_data_types(self.data_types, required=False),
            reread_attempts=self.reread_attempts,
            reread_delay=self.reread_delay,
            history_margin=self.history_margin,
            logger=self.log,
        )
