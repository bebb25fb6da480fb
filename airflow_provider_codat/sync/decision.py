"""When a data type the provider waits for is done, and how it ended: the per-type decision and the verdict.

Pure functions over checked ``dataStatus`` entries and PullOperations (see :mod:`.status`), shared by the
sensor, the trigger and the refresh operators, so that all three decide the same way. No I/O here.

Two ways to wait for a data type:

* **ticket**: a known dataset (the sync a refresh queued or joined). It is done when ``dataStatus`` names it
  as ``latestSuccessfulSyncId`` (success) or as ``latestSyncId`` in a finished state. When ``dataStatus`` names
  another sync (it moved past ours, or has not caught up yet) only ``data/history/{id}`` can tell.
* **since**: no dataset, a point in time. Done when ``lastSuccessfulSync >= synced_after`` and no sync of the
  type is running. A failed sync counts only if it finished after ``synced_after``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from airflow_provider_codat.sync.status import (
    NOT_SYNCED,
    WARNED,
    SyncStatus,
    is_failed,
    is_finished,
    is_success,
    parse_timestamp,
)

_HINTS = {
    SyncStatus.AUTH_ERROR: "the company must re-link its connection",
    SyncStatus.PERMISSIONS_ERROR: "the connection lacks the permissions for this data type",
    SyncStatus.RATE_LIMIT_ERROR: "the source platform rate-limited Codat; try again later",
    SyncStatus.PREREQUISITE_NOT_MET: "another data type must sync first",
    SyncStatus.CANCELLED: "the sync was cancelled",
}


class State(enum.Enum):
    """Where one awaited type stands after a look."""

    DONE = "done"
    PENDING = "pending"
    LOOKUP = "lookup"  # ask data/history/{id} to decide


def outcome(
    status: str,
    dataset_id: str | None,
    last_successful_sync: str | None = None,
    error_message: str | None = None,
) -> dict[str, Any]:
    """One data type's result, as the sensor returns it in XCom (plain strings: the ids may come in checked)."""
    return {
        "status": status,
        "dataset_id": str(dataset_id) if dataset_id is not None else None,
        "last_successful_sync": last_successful_sync,
        "error_message": error_message,
    }


@dataclass(frozen=True)
class Decision:
    """What is known about one awaited data type after a look at ``dataStatus`` (and maybe its history).

    :param state: :class:`State` (``LOOKUP``: ask ``data/history/{lookup}`` to decide).
    :param outcome: the result, when done.
    :param status: the status seen, when pending (for logs and timeout messages).
    :param lookup: the dataset id to fetch, when ``state == "lookup"``.
    """

    state: State
    outcome: dict[str, Any] | None = None
    status: str | None = None
    lookup: str | None = None

    @classmethod
    def done(cls, result: dict[str, Any]) -> Decision:
        return cls(State.DONE, outcome=result)

    @classmethod
    def pending(cls, status: str | None) -> Decision:
        return cls(State.PENDING, status=status or NOT_SYNCED)

    @classmethod
    def look_up(cls, dataset_id: str, status: str | None) -> Decision:
        return cls(State.LOOKUP, status=status or NOT_SYNCED, lookup=dataset_id)


def entry_fingerprint(entry: dict[str, Any] | None) -> tuple:
    """What identifies a ``dataStatus`` entry's state: when it is unchanged, a history answer still holds."""
    entry = entry or {}
    return (
        entry.get("currentStatus"),
        entry.get("latestSyncId"),
        entry.get("latestSuccessfulSyncId"),
        entry.get("lastSuccessfulSync"),
    )


# --- ticket: a known dataset ---------------------------------------------------------------------------------


def decide_ticket(entry: dict[str, Any] | None, dataset_id: str) -> Decision:
    """Decide one data type of a ticket from its ``dataStatus`` entry.

    :param entry: the type's ``dataStatus`` value (``None`` when the type is not listed).
    :param dataset_id: the awaited dataset.
    """
    entry = entry or {}
    current = entry.get("currentStatus")
    if entry.get("latestSuccessfulSyncId") == dataset_id:
        return Decision.done(outcome(SyncStatus.COMPLETE.value, dataset_id, entry.get("lastSuccessfulSync")))
    if entry.get("latestSyncId") == dataset_id:
        if is_success(current):
            # latestSuccessfulSyncId lags behind latestSyncId: the dataset is ours and it succeeded.
            return Decision.done(
                outcome(SyncStatus.COMPLETE.value, dataset_id, entry.get("lastSuccessfulSync"))
            )
        if is_finished(current):
            # Only the PullOperation carries Codat's errorMessage.
            return Decision.look_up(dataset_id, current)
        return Decision.pending(current)
    # dataStatus names another sync: a newer one (ours finished in between) or an older one (not caught up).
    return Decision.look_up(dataset_id, current)


def decide_ticket_from_history(
    entry: dict[str, Any] | None, dataset_id: str, operation: dict[str, Any]
) -> Decision:
    """Decide one ticket type from its PullOperation (``data/history/{id}``)."""
    entry = entry or {}
    status = operation.get("status")
    if not is_finished(status):
        return Decision.pending(status)
    if is_success(status):
        return Decision.done(outcome(SyncStatus.COMPLETE.value, dataset_id, operation.get("completed")))
    return Decision.done(
        outcome(status, dataset_id, entry.get("lastSuccessfulSync"), _error_message(operation))
    )


# --- since: a point in time ----------------------------------------------------------------------------------


def decide_since(entry: dict[str, Any] | None, synced_after: datetime) -> Decision:
    """Decide one data type from its ``dataStatus`` entry against ``synced_after``.

    :param entry: the type's ``dataStatus`` entry.
    :param synced_after: the moment (a naive one is UTC, as Codat's own timestamps are).
    """
    entry = entry or {}
    synced_after = parse_timestamp(synced_after) or synced_after
    current = entry.get("currentStatus")
    if current is None and not entry.get("latestSyncId"):
        return Decision.pending(NOT_SYNCED)
    if not is_finished(current):
        return Decision.pending(current)
    last = parse_timestamp(entry.get("lastSuccessfulSync"))
    if last is not None and last >= synced_after:
        return Decision.done(
            outcome(
                SyncStatus.COMPLETE.value,
                entry.get("latestSuccessfulSyncId"),
                entry.get("lastSuccessfulSync"),
            )
        )
    if current in WARNED:
        # The platform has no such data: waiting for another sync would not change that.
        return Decision.done(outcome(current, entry.get("latestSyncId"), entry.get("lastSuccessfulSync")))
    if is_failed(current) and entry.get("latestSyncId"):
        # A failure counts only if it happened after synced_after: its PullOperation says when.
        return Decision.look_up(entry["latestSyncId"], current)
    return Decision.pending(current)


def decide_since_from_history(
    entry: dict[str, Any] | None, synced_after: datetime, operation: dict[str, Any]
) -> Decision:
    """Decide a failed type (since mode) from the PullOperation of its latest sync."""
    entry = entry or {}
    synced_after = parse_timestamp(synced_after) or synced_after
    status = operation.get("status")
    if not is_finished(status):
        return Decision.pending(status)
    finished_at = parse_timestamp(operation.get("completed")) or parse_timestamp(operation.get("requested"))
    if finished_at is None or finished_at < synced_after:
        # An old failure: someone has yet to sync the type again.
        return Decision.pending(status)
    if is_success(status):
        return Decision.done(
            outcome(SyncStatus.COMPLETE.value, operation.get("id"), operation.get("completed"))
        )
    return Decision.done(
        outcome(status, operation.get("id"), entry.get("lastSuccessfulSync"), _error_message(operation))
    )


def _error_message(operation: dict[str, Any]) -> str | None:
    return operation.get("errorMessage") or operation.get("statusDescription") or None


# --- summary -------------------------------------------------------------------------------------------------


@dataclass
class Summary:
    """The verdict over every awaited type once all are finished.

    :param succeeded: True when no type failed (``NotSupported`` is a warning, not a failure).
    :param failed: type -> outcome, for failed types.
    :param warnings: type -> outcome, for ``NotSupported`` types.
    """

    succeeded: bool
    failed: dict[str, dict[str, Any]] = field(default_factory=dict)
    warnings: dict[str, dict[str, Any]] = field(default_factory=dict)

    def failure_message(self, company_id: str) -> str:
        return failure_message(company_id, self.failed)

    def warning_message(self, company_id: str) -> str:
        names = ", ".join(sorted(self.warnings))
        return (
            f"Codat does not support {names} for company {company_id} on its platform (NotSupported): "
            "no data will come for these types."
        )


def summarize(outcomes: dict[str, dict[str, Any]]) -> Summary:
    failed = {key: value for key, value in outcomes.items() if is_failed(value.get("status"))}
    warnings = {key: value for key, value in outcomes.items() if value.get("status") in WARNED}
    # An unknown final status never reaches here: unknown values count as in progress.
    return Summary(succeeded=not failed, failed=failed, warnings=warnings)


def failure_message(company_id: str, failed: dict[str, dict[str, Any]]) -> str:
    """One message naming every failed type, its status and Codat's ``errorMessage``."""
    parts = []
    for data_type in sorted(failed):
        result = failed[data_type]
        status = result.get("status")
        part = f"{data_type}: {status} (dataset {result.get('dataset_id')})"
        message = result.get("error_message")
        if message:
            part += f": {message}"
        hint = _HINTS.get(status)
        if hint:
            part += f" [{hint}]"
        parts.append(part)
    noun = "sync" if len(failed) == 1 else "syncs"
    return f"Codat {noun} failed for company {company_id}: " + "; ".join(parts)


def pending_description(pending: dict[str, str]) -> str:
    """``invoices (Fetching), payments (Queued)``."""
    return ", ".join(f"{data_type} ({status})" for data_type, status in sorted(pending.items())) or "none"
