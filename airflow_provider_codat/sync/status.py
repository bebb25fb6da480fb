"""Codat's sync status vocabulary, and the checked shape of the two answers a wait reads.

* :class:`SyncStatus`: every status Codat documents for a PullOperation (and so for ``currentStatus``), with the
  terminal sets :data:`SUCCEEDED`, :data:`WARNED`, :data:`FAILED` and :data:`FINISHED`. A status Codat adds
  later is not a member and counts as still running.
* :func:`check_data_status` and :func:`check_operation`: a ``dataStatus`` body or a PullOperation whose shape
  is not what the API documents is an error naming what is wrong (asking again would not fix it), never a
  "still running" that waits until the deadline.
* :func:`parse_timestamp`, :func:`format_timestamp`: Codat's timestamps (seven fractional digits) as aware UTC
  datetimes, and back.
"""

from __future__ import annotations

import enum
from typing import Any

from airflow_provider_codat.errors import CodatAPIError
from airflow_provider_codat.safe_repr import shorten
from airflow_provider_codat.timestamps import parse_timestamp


class SyncStatus(enum.StrEnum):
    """A PullOperation's ``status`` (and a ``dataStatus`` entry's ``currentStatus``)."""

    INITIAL = "Initial"
    QUEUED = "Queued"
    FETCHING = "Fetching"
    MAP_QUEUED = "MapQueued"
    MAPPING = "Mapping"
    PROCESSING_QUEUED = "ProcessingQueued"
    PROCESSING = "Processing"
    VALIDATION_QUEUED = "ValidationQueued"
    VALIDATING = "Validating"
    COMPLETE = "Complete"
    NOT_SUPPORTED = "NotSupported"
    FETCH_ERROR = "FetchError"
    MAP_ERROR = "MapError"
    INTERNAL_ERROR = "InternalError"
    PROCESSING_ERROR = "ProcessingError"
    VALIDATION_ERROR = "ValidationError"
    AUTH_ERROR = "AuthError"
    CANCELLED = "Cancelled"
    RATE_LIMIT_ERROR = "RateLimitError"
    PERMISSIONS_ERROR = "PermissionsError"
    PREREQUISITE_NOT_MET = "PrerequisiteNotMet"
    ROUTING_ERROR = "RoutingError"


S = SyncStatus
SUCCEEDED: frozenset[str] = frozenset({S.COMPLETE})
# The platform has no such data: a warning, and final (another sync would say the same).
WARNED: frozenset[str] = frozenset({S.NOT_SUPPORTED})
FAILED: frozenset[str] = frozenset(
    {
        S.FETCH_ERROR, S.MAP_ERROR, S.INTERNAL_ERROR, S.PROCESSING_ERROR, S.VALIDATION_ERROR, S.AUTH_ERROR,
        S.CANCELLED, S.RATE_LIMIT_ERROR, S.PERMISSIONS_ERROR, S.PREREQUISITE_NOT_MET, S.ROUTING_ERROR,
    }
)  # fmt: skip
FINISHED: frozenset[str] = SUCCEEDED | WARNED | FAILED

# Shown for a data type that dataStatus does not list at all yet.
NOT_SYNCED = "NotSynced"


def is_finished(status: str | None) -> bool:
    """Whether a status is final. Unknown values (and ``None``) are taken as still in progress."""
    return status in FINISHED


def is_failed(status: str | None) -> bool:
    return status in FAILED


def is_success(status: str | None) -> bool:
    return status in SUCCEEDED


# --- moments: parse_timestamp and format_timestamp live in airflow_provider_codat.timestamps ------------------


# --- the answers a wait reads ----------------------------------------------------------------------------------

_ENTRY_TEXT = ("currentStatus", "latestSyncId", "latestSuccessfulSyncId")


def _malformed(what: str, problem: str) -> CodatAPIError:
    # Status 200: the answer came; asking again would get the same shape, so the error is not transient.
    return CodatAPIError(
        f"Codat answered {what} in a shape the API does not document: {problem}. The wait stops here rather "
        "than poll until its deadline; check the connection's base URL, or report it to Codat support.",
        status_code=200,
        error=f"malformed {what}",
    )


def check_data_status(body: Any, company_id: str, data_types: list[str]) -> dict[str, dict | None]:
    """The ``dataStatus`` entries of ``data_types``, each checked; ``None`` for a type Codat does not list.

    :param body: the decoded ``dataStatus`` answer.
    :param company_id: the company (named in the error).
    :param data_types: the awaited types (other entries are not looked at).
    :raises CodatAPIError: (not transient) naming the type and field that are malformed.
    """
    what = f"dataStatus of company {company_id}"
    if not isinstance(body, dict):
        raise _malformed(what, f"a JSON {type(body).__name__} instead of an object keyed by data type")
    entries: dict[str, dict | None] = {}
    for data_type in data_types:
        entry = body.get(data_type)
        if entry is not None:
            _check_entry(what, data_type, entry)
        entries[data_type] = entry
    return entries


def _check_entry(what: str, data_type: str, entry: Any) -> None:
    if not isinstance(entry, dict):
        raise _malformed(what, f"the entry for {data_type} is a JSON {type(entry).__name__}, not an object")
    if "currentStatus" not in entry:
        raise _malformed(what, f"the entry for {data_type} has no currentStatus")
    for name in _ENTRY_TEXT:
        value = entry.get(name)
        if value is not None and not isinstance(value, str):
            raise _malformed(what, f"{data_type}.{name} is {shorten(value, 60)}, not a string")
    last = entry.get("lastSuccessfulSync")
    if last is not None and parse_timestamp(last) is None:
        raise _malformed(what, f"{data_type}.lastSuccessfulSync is {shorten(last, 60)}, not a date-time")


def check_operation(body: Any, company_id: str, dataset_id: str) -> dict:
    """A PullOperation (``data/history/{id}``), checked: an object with a string ``status``.

    :raises CodatAPIError: (not transient) naming what is malformed.
    """
    what = f"data/history/{dataset_id} of company {company_id}"
    if not isinstance(body, dict):
        raise _malformed(what, f"a JSON {type(body).__name__} instead of a PullOperation object")
    status = body.get("status")
    if not isinstance(status, str):
        raise _malformed(what, f"status is {shorten(status, 60)}, not a string")
    for name in ("completed", "requested"):
        value = body.get(name)
        if value is not None and parse_timestamp(value) is None:
            raise _malformed(what, f"{name} is {shorten(value, 60)}, not a date-time")
    return body
