"""Queue Codat refreshes and name the exact syncs to wait for: the work of the refresh operators, without Airflow.

Two ways to refresh, each returning the plain ticket (:func:`~.ticket.make_ticket`)::

    {"company_id": "...", "requested_at": "2026-11-21T10:00:00.000000Z",
     "datasets": {"invoices": "<dataset id>", ...}, "joined": ["payments"]}

* :func:`queue_data_types`: one ``data/queue`` call per type; a type whose previous sync is still running is
  joined (its dataset id comes in Codat's error) or the error is raised.
* :func:`refresh_all_data`: ``data/all``, which answers 204 with no ids; the ticket comes from ``dataStatus``
  before and after the call (:func:`derive_refreshed`), read again a few times when Codat is slow to show the
  new syncs, then from ``data/history``; a listed type that ``data/all`` did not queue is queued on its own.

Both take a hook and checked values (:class:`~airflow_provider_codat.values.CompanyId`, data types normalised
to catalogue keys or entries, an optional :class:`~airflow_provider_codat.values.ConnectionId`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_codat.datatypes import DataType, fetch_on_first_link_types
from airflow_provider_codat.errors import (
    CodatAPIError,
    CodatDatasetInProgressError,
    CodatValidationError,
    is_transient,
)
from airflow_provider_codat.query import condition
from airflow_provider_codat.safe_repr import shorten
from airflow_provider_codat.sync.interval import CLOCK
from airflow_provider_codat.sync.status import is_finished
from airflow_provider_codat.sync.ticket import make_ticket, utcnow_iso
from airflow_provider_codat.timestamps import parse_timestamp

if TYPE_CHECKING:
    from airflow_provider_codat.hooks.codat import CodatHook
    from airflow_provider_codat.values import CompanyId, ConnectionId

log = logging.getLogger(__name__)

IF_IN_PROGRESS = ("join", "fail")
# Looking again when Codat has not created the datasets yet: bounded, a few seconds in all.
REREAD_ATTEMPTS = 3
REREAD_DELAY = 2.0
# data/history is filtered on Codat's clock, not ours: allow for skew between the two.
HISTORY_MARGIN = timedelta(seconds=60)


def _keys(data_types: Sequence[str | DataType]) -> list[str]:
    return [getattr(data_type, "key", data_type) for data_type in data_types]


def _queue_or_join(
    hook: CodatHook,
    company_id: CompanyId,
    data_type: str,
    connection_id: ConnectionId | None = None,
    *,
    join: bool = True,
) -> tuple[str, bool]:
    """Queue one type: ``(dataset id, False)``; or, joining, ``(the running sync's id, True)``.

    :raises CodatDatasetInProgressError: when not joining, or when Codat's error names no running dataset.
    """
    try:
        operation = hook.queue_data_type(company_id, data_type, connection_id)
    except CodatDatasetInProgressError as exc:
        if not join or not exc.dataset_id:
            raise
        return exc.dataset_id, True
    return str(operation["id"]), False


def queue_data_types(
    hook: CodatHook,
    company_id: CompanyId,
    data_types: Sequence[str | DataType],
    *,
    connection_id: ConnectionId | None = None,
    if_in_progress: str = "join",
    logger: logging.Logger | Any = None,
) -> dict[str, Any]:
    """Queue a sync of each type (one ``data/queue`` call each) and return the ticket.

    :param hook: the Codat hook.
    :param company_id: the checked company id.
    :param data_types: catalogue keys or entries, already normalised.
    :param connection_id: queue from this data connection (default: Codat's choice).
    :param if_in_progress: ``"join"`` the running sync named in Codat's error, or ``"fail"`` (raise the error).
    :param logger: where the joins are logged.
    :raises CodatDatasetInProgressError: with ``"fail"``, naming the running dataset.
    """
    if if_in_progress not in IF_IN_PROGRESS:
        raise CodatValidationError(f"if_in_progress must be 'join' or 'fail', got {shorten(if_in_progress)}.")
    logger = logger or log
    requested_at = utcnow_iso()
    datasets: dict[str, str] = {}
    joined: list[str] = []
    for data_type in _keys(data_types):
        dataset_id, running = _queue_or_join(
            hook, company_id, data_type, connection_id, join=if_in_progress == "join"
        )
        if running:
            logger.info("A %s sync (%s) is already running: joining it.", data_type, dataset_id)
            joined.append(data_type)
        datasets[data_type] = dataset_id
    return make_ticket(company_id, requested_at, datasets, joined)


def refresh_all_data(
    hook: CodatHook,
    company_id: CompanyId,
    data_types: Sequence[str | DataType] | None = None,
    *,
    reread_attempts: int = REREAD_ATTEMPTS,
    reread_delay: float = REREAD_DELAY,
    history_margin: timedelta = HISTORY_MARGIN,
    logger: logging.Logger | Any = None,
) -> dict[str, Any]:
    """Queue every *fetch on first link* type (``data/all``) and return the ticket.

    :param hook: the Codat hook.
    :param company_id: the checked company id.
    :param data_types: limit the ticket to these keys or entries (``None`` or empty: every type ``data/all``
        queued); a listed type that ``data/all`` did not queue is queued on its own.
    :param reread_attempts: how many times ``dataStatus`` is read again when the new syncs do not show yet.
    :param reread_delay: seconds between those reads.
    :param history_margin: how far before the call ``data/history`` is searched (Codat's clock is not ours).
    :param logger: where the fallbacks are logged.
    :raises CodatAPIError: the lost answer to ``data/all`` when, without data types, nothing queued shows.
    """
    logger = logger or log
    wanted = _keys(data_types) if data_types else None
    requested_at = utcnow_iso()
    before = hook.get_data_status(company_id)
    lost = _call_data_all(hook, company_id, logger)
    expected = set(wanted) if wanted is not None else set(fetch_on_first_link_types())
    datasets, joined = _look(hook, company_id, before, expected, wanted, reread_attempts, reread_delay)
    if _missing(wanted, datasets, joined):
        since = parse_timestamp(requested_at) - history_margin
        _from_history(hook, company_id, since, before, wanted, datasets, logger)
    if wanted is not None:
        for data_type in wanted:
            if data_type not in datasets:
                datasets[data_type] = _queue_missing(hook, company_id, data_type, logger)
    elif not datasets and lost is not None:
        raise lost
    elif not datasets:
        logger.warning("data/all queued nothing visible for company %s.", company_id)
    return make_ticket(company_id, requested_at, datasets, joined)


def _call_data_all(hook: CodatHook, company_id: CompanyId, logger: Any) -> CodatAPIError | None:
    """Call ``data/all``; return its error when the answer was lost (Codat may have queued the syncs)."""
    try:
        hook.refresh_all_data(company_id)
    except CodatAPIError as exc:
        if not is_transient(exc):
            raise
        # The hook does not retry data/all after a lost answer: Codat may have queued it. Look.
        logger.warning("Codat's answer to data/all was lost (%s): reading dataStatus to find out.", exc)
        return exc
    return None


def _look(
    hook: CodatHook,
    company_id: CompanyId,
    before: dict[str, dict],
    expected: set[str],
    wanted: list[str] | None,
    attempts: int,
    delay: float,
) -> tuple[dict[str, str], list[str]]:
    """``dataStatus`` after the call, read again (bounded) while the new syncs do not show."""
    datasets: dict[str, str] = {}
    joined: list[str] = []
    for attempt in range(attempts + 1):
        if attempt:
            CLOCK.sleep(delay)
        after = hook.get_data_status(company_id)
        datasets, joined = derive_refreshed(before, after, expected, limit=wanted)
        if not _missing(wanted, datasets, joined):
            break
    return datasets, joined


def _missing(wanted: list[str] | None, datasets: dict[str, str], joined: list[str]) -> bool:
    """Whether it is worth looking again: a listed first-link type is missing, or nothing new appeared."""
    if wanted is not None:
        first_link = set(fetch_on_first_link_types())
        return any(t not in datasets and t in first_link for t in wanted)
    return len(datasets) == len(joined)


def _from_history(
    hook: CodatHook,
    company_id: CompanyId,
    since: datetime,
    before: dict[str, dict],
    wanted: list[str] | None,
    datasets: dict[str, str],
    logger: Any,
) -> None:
    """Fill ``datasets`` from the syncs requested since ``since`` that ``dataStatus`` does not show yet."""
    known = {entry.get("latestSyncId") for entry in before.values()}
    query = condition("requested", ">=", since.astimezone(UTC))
    # Newest first: the first operation seen per type is the one to await.
    for operation in hook.iter_pull_operations(company_id, query=query, order_by="-requested"):
        data_type = operation.get("dataType")
        if not data_type or data_type in datasets or operation.get("id") in known:
            continue
        if wanted is not None and data_type not in wanted:
            continue
        logger.info("data/history shows %s dataset %s, not yet in dataStatus.", data_type, operation["id"])
        datasets[data_type] = str(operation["id"])


def _queue_missing(hook: CodatHook, company_id: CompanyId, data_type: str, logger: Any) -> str:
    """Queue a listed type ``data/all`` did not; a running sync (most likely the one ``data/all`` queued and
    ``dataStatus`` does not show yet) is awaited instead."""
    dataset_id, running = _queue_or_join(hook, company_id, data_type)
    if not running:
        logger.info("data/all did not queue %s: queued it on its own (%s).", data_type, dataset_id)
    return dataset_id


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
