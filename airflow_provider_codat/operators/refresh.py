"""Queue Codat refreshes and return a ticket naming the exact syncs to wait for.

A ticket (the operators' XCom ``return_value``)::

    {"company_id": "...", "requested_at": "2026-11-21T10:00:00.000000Z",
     "datasets": {"invoices": "<dataset id>", ...}, "joined": ["payments"]}

``datasets`` names, per data type, the sync this refresh queued or the one already running that it joined;
never a sync that finished before the refresh. With ``wait_for_completion=True`` the ticket also carries
``outcomes`` (per type ``{status, dataset_id, last_successful_sync, error_message}``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_codat.datatypes import fetch_on_first_link_types
from airflow_provider_codat.defaults import DEFAULT_CONN_ID
from airflow_provider_codat.errors import (
    CodatAPIError,
    CodatDatasetInProgressError,
    CodatSyncTimeoutError,
    CodatValidationError,
    is_transient,
)
from airflow_provider_codat.links import CodatCompanyLink, push_company_link
from airflow_provider_codat.query import condition
from airflow_provider_codat.safe_repr import shorten
from airflow_provider_codat.sync.interval import CLOCK, DEFAULT_MAX_POLL_INTERVAL, DEFAULT_POLL_INTERVAL
from airflow_provider_codat.sync.status import is_finished
from airflow_provider_codat.sync.ticket import (
    WaitSpec,
    normalize_data_types,
    parse_ticket,
    to_seconds,
    utcnow_iso,
)
from airflow_provider_codat.sync.wait import Wait, resolve_event, run
from airflow_provider_codat.timestamps import parse_timestamp
from airflow_provider_codat.triggers.sync import CodatSyncTrigger
from airflow_provider_codat.validation import require_uuid
from airflow_provider_codat.version_compat import conf

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_codat.hooks.codat import CodatHook

DEFAULT_TIMEOUT = timedelta(hours=6)
TICKET_XCOM_KEY = "codat_ticket"
# The task-side backstop on a deferral: the trigger times out first, with a message naming the running types.
DEFERRAL_GRACE = timedelta(minutes=5)

# The former name: a refresh operator's wait (``wait_for_completion``) passed its ``timeout``.
CodatSyncTimeout = CodatSyncTimeoutError


class _CodatRefreshOperator(BaseOperator):
    """Shared by the refresh operators: the link, the optional wait, ``execute_complete``."""

    operator_extra_links = (CodatCompanyLink(),)
    ui_color = "#cfe3f5"

    def __init__(
        self,
        *,
        company_id: str,
        codat_conn_id: str = DEFAULT_CONN_ID,
        wait_for_completion: bool = False,
        poll_interval: timedelta | float = DEFAULT_POLL_INTERVAL,
        max_poll_interval: timedelta | float = DEFAULT_MAX_POLL_INTERVAL,
        timeout: timedelta | float = DEFAULT_TIMEOUT,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.company_id = company_id
        self.codat_conn_id = codat_conn_id
        self.wait_for_completion = wait_for_completion
        self.poll_interval = to_seconds(poll_interval, "poll_interval")
        self.max_poll_interval = max(self.poll_interval, to_seconds(max_poll_interval, "max_poll_interval"))
        self.timeout = to_seconds(timeout, "timeout")
        self.deferrable = deferrable

    @cached_property
    def hook(self) -> CodatHook:
        from airflow_provider_codat.hooks.codat import CodatHook

        return CodatHook(codat_conn_id=self.codat_conn_id)

    def refresh(self, company_id: str) -> dict[str, Any]:
        """Queue the refresh; return the ticket."""
        raise NotImplementedError

    def execute(self, context: Context) -> dict[str, Any]:
        company_id = require_uuid(str(self.company_id), "company_id")
        push_company_link(context, self.hook, company_id)
        ticket = self.refresh(company_id)
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
        now = CLOCK.now()
        wait = Wait(
            WaitSpec(company_id=company_id, datasets=ticket["datasets"]),
            deadline=now + self.timeout,
            started_at=now,
            poll_interval=self.poll_interval,
            max_poll_interval=self.max_poll_interval,
            logger=self.log,
        )
        if not self.deferrable:
            return {**ticket, "outcomes": resolve_event(run(wait, self.hook), logger=self.log)}
        event = wait.poke(self.hook)
        if event is None:
            # execute_complete gets it back from next_kwargs; XCom too, for runners that keep only the event
            # (``airflow dags test`` does).
            context["ti"].xcom_push(key=TICKET_XCOM_KEY, value=ticket)
            self.defer(
                trigger=CodatSyncTrigger.for_wait(wait, self.codat_conn_id),
                method_name="execute_complete",
                kwargs={"ticket": ticket},
                timeout=timedelta(seconds=max(0.0, wait.deadline - CLOCK.now())) + DEFERRAL_GRACE,
            )
        return {**ticket, "outcomes": resolve_event(event, logger=self.log)}

    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None, ticket: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Resume after the trigger: the ticket with its outcomes, or raise on anything but success."""
        outcomes = resolve_event(event, logger=self.log)
        if ticket is None:
            ticket = context["ti"].xcom_pull(task_ids=self.task_id, key=TICKET_XCOM_KEY)
        if not isinstance(ticket, dict):
            raise CodatValidationError(f"{type(self).__name__} resumed without its ticket.")
        return {**parse_ticket(ticket), "outcomes": outcomes}


def _ticket(
    company_id: str, requested_at: str, datasets: dict[str, str], joined: list[str]
) -> dict[str, Any]:
    return {
        "company_id": company_id,
        "requested_at": requested_at,
        "datasets": dict(sorted(datasets.items())),
        "joined": sorted(set(joined)),
    }


class CodatQueueDataTypesOperator(_CodatRefreshOperator):
    """Queue a sync of each listed data type (one ``data/queue`` call each) and return the ticket.

    A type whose previous sync is still running cannot be queued again: with ``if_in_progress="join"`` the
    running sync named in Codat's error is awaited instead (and listed in ``joined``); with ``"fail"`` the error
    is raised, with the running dataset's id in its message.

    :param company_id: the company (templated).
    :param data_types: catalogue keys (templated; a list or a comma-separated string).
    :param connection_id: queue from this data connection (templated; default: Codat's choice).
    :param if_in_progress: ``"join"`` (default) or ``"fail"``.
    :param codat_conn_id: the Airflow connection id.
    :param wait_for_completion: wait for the syncs, as :class:`CodatSyncSensor` does.
    :param poll_interval: first interval of the wait, seconds (doubles each poll).
    :param max_poll_interval: the interval's cap, seconds.
    :param timeout: how long the wait may take (default 6 hours).
    :param deferrable: wait in the triggerer.
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
        if if_in_progress not in ("join", "fail"):
            raise ValueError(f"if_in_progress must be 'join' or 'fail', got {shorten(if_in_progress)}.")
        self.data_types = data_types
        self.connection_id = connection_id
        self.if_in_progress = if_in_progress

    def refresh(self, company_id: str) -> dict[str, Any]:
        data_types = normalize_data_types(self.data_types)
        connection_id = require_uuid(str(self.connection_id), "connection_id") if self.connection_id else None
        requested_at = utcnow_iso()
        datasets: dict[str, str] = {}
        joined: list[str] = []
        for data_type in data_types:
            try:
                operation = self.hook.queue_data_type(company_id, data_type, connection_id)
            except CodatDatasetInProgressError as exc:
                if self.if_in_progress == "fail" or not exc.dataset_id:
                    raise
                self.log.info("A %s sync (%s) is already running: joining it.", data_type, exc.dataset_id)
                datasets[data_type] = exc.dataset_id
                joined.append(data_type)
                continue
            datasets[data_type] = str(operation["id"])
        return _ticket(company_id, requested_at, datasets, joined)


class CodatRefreshAllDataOperator(_CodatRefreshOperator):
    """Queue every *fetch on first link* data type (``data/all``) and return the ticket.

    ``data/all`` answers 204 with no dataset ids, so the ticket is derived from ``dataStatus`` read before and
    after the call: a type whose ``latestSyncId`` changed has a new dataset; a type that was already syncing is
    joined (never taken as done from the older sync). When nothing has appeared yet, ``dataStatus`` is read again
    a few times, then ``data/history`` (syncs requested since the call) fills the gaps.

    :param company_id: the company (templated).
    :param data_types: limit the ticket to these types (templated); a listed type that ``data/all`` did not
        queue is queued on its own.
    :param codat_conn_id: the Airflow connection id.
    :param wait_for_completion: wait for the syncs, as :class:`CodatSyncSensor` does.
    :param poll_interval: first interval of the wait, seconds (doubles each poll).
    :param max_poll_interval: the interval's cap, seconds.
    :param timeout: how long the wait may take (default 6 hours).
    :param deferrable: wait in the triggerer.
    """

    template_fields: Sequence[str] = ("company_id", "data_types")

    # Looking again when Codat has not created the datasets yet: bounded, a few seconds in all.
    reread_attempts = 3
    reread_delay = 2.0
    # data/history is filtered on Codat's clock, not ours: allow for skew between the two.
    history_margin = timedelta(seconds=60)

    def __init__(self, *, company_id: str, data_types: Sequence[str] | str | None = None, **kwargs: Any):
        super().__init__(company_id=company_id, **kwargs)
        self.data_types = data_types

    def refresh(self, company_id: str) -> dict[str, Any]:
        wanted = normalize_data_types(self.data_types, required=False)
        requested_at = utcnow_iso()
        before = self.hook.get_data_status(company_id)
        lost: CodatAPIError | None = None
        try:
            self.hook.refresh_all_data(company_id)
        except CodatAPIError as exc:
            if not is_transient(exc):
                raise
            # The hook does not retry data/all after a lost answer: Codat may have queued it. Look.
            self.log.warning("Codat's answer to data/all was lost (%s): reading dataStatus to find out.", exc)
            lost = exc

        expected = set(wanted) if wanted is not None else set(fetch_on_first_link_types())
        datasets: dict[str, str] = {}
        joined: list[str] = []
        for attempt in range(self.reread_attempts + 1):
            if attempt:
                CLOCK.sleep(self.reread_delay)
            after = self.hook.get_data_status(company_id)
            datasets, joined = derive_refreshed(before, after, expected, limit=wanted)
            if not self._missing(wanted, datasets, joined):
                break
        if self._missing(wanted, datasets, joined):
            self._from_history(company_id, requested_at, before, wanted, datasets)
        if wanted is not None:
            for data_type in wanted:
                if data_type not in datasets:
                    self._queue_one(company_id, data_type, datasets)
        elif not datasets and lost is not None:
            raise lost
        elif not datasets:
            self.log.warning("data/all queued nothing visible for company %s.", company_id)
        return _ticket(company_id, requested_at, datasets, joined)

    @staticmethod
    def _missing(wanted: list[str] | None, datasets: dict[str, str], joined: list[str]) -> bool:
        """Whether it is worth looking again: a listed first-link type is missing, or nothing new appeared."""
        if wanted is not None:
            first_link = set(fetch_on_first_link_types())
            return any(t not in datasets and t in first_link for t in wanted)
        return len(datasets) == len(joined)

    def _from_history(
        self,
        company_id: str,
        requested_at: str,
        before: dict[str, dict],
        wanted: list[str] | None,
        datasets: dict[str, str],
    ) -> None:
        since = parse_timestamp(requested_at) - self.history_margin
        known = {entry.get("latestSyncId") for entry in before.values()}
        query = condition("requested", ">=", since.astimezone(UTC))
        # Newest first: the first operation seen per type is the one to await.
        for operation in self.hook.iter_pull_operations(company_id, query=query, order_by="-requested"):
            data_type = operation.get("dataType")
            if not data_type or data_type in datasets or operation.get("id") in known:
                continue
            if wanted is not None and data_type not in wanted:
                continue
            self.log.info(
                "data/history shows %s dataset %s, not yet in dataStatus.", data_type, operation["id"]
            )
            datasets[data_type] = str(operation["id"])

    def _queue_one(self, company_id: str, data_type: str, datasets: dict[str, str]) -> None:
        try:
            operation = self.hook.queue_data_type(company_id, data_type)
        except CodatDatasetInProgressError as exc:
            if not exc.dataset_id:
                raise
            # Most likely the sync data/all queued and dataStatus has not shown yet: await it.
            datasets[data_type] = exc.dataset_id
            return
        self.log.info("data/all did not queue %s: queued it on its own (%s).", data_type, operation["id"])
        datasets[data_type] = str(operation["id"])


def derive_refreshed(
    before: dict[str, dict], after: dict[str, dict], expected: set[str], *, limit: list[str] | None = None
) -> tuple[dict[str, str], list[str]]:
    """Which syncs a ``data/all`` call started, from ``dataStatus`` before and after it.

    :param before: ``dataStatus`` read just before the call.
    :param after: ``dataStatus`` read after it.
    :param expected: the types a running sync is joined for (the listed types, or the first-link ones).
    :param limit: only these types (``None``: any type whose latest sync changed).
    :returns: (type -> dataset id, joined types).
    """
    datasets: dict[str, str] = {}
    joined: list[str] = []
    for data_type in sorted(set(before) | set(after)):
        if limit is not None and data_type not in limit:
            continue
        old = before.get(data_type) or {}
        new = after.get(data_type) or {}
        old_id, new_id = old.get("latestSyncId"), new.get("latestSyncId")
        if new_id and new_id != old_id:
            datasets[data_type] = new_id
        elif old_id and not is_finished(old.get("currentStatus")) and data_type in expected:
            # Running before the call: data/all could not queue another; this running sync is the one to await.
            datasets[data_type] = old_id
            joined.append(data_type)
    return datasets, joined
