"""Has a data type synced? What ``dataStatus`` says about it before an extract reads, and after."""

from __future__ import annotations

from typing import Any

from airflow_provider_codat.errors import CodatDataNotSyncedError
from airflow_provider_codat.sync.status import is_finished

_NOT_SUPPORTED = "NotSupported"


def sync_fingerprint(status: dict[str, Any] | None) -> tuple[Any, Any]:
    """What changes in ``dataStatus`` when a sync of the type completes successfully."""
    status = status or {}
    return status.get("latestSuccessfulSyncId"), status.get("lastSuccessfulSync")


def check_synced(status: dict[str, Any] | None, company_id: str, data_type: str) -> bool:
    """Raise unless the type has a completed sync; return ``False`` when the platform does not support it.

    :param status: the type's entry in ``dataStatus`` (``None`` when absent).
    """
    status = status or {}
    if status.get("latestSuccessfulSyncId") or status.get("lastSuccessfulSync"):
        return True
    current = status.get("currentStatus")
    if current == _NOT_SUPPORTED:
        return False
    raise CodatDataNotSyncedError(not_synced_message(company_id, data_type, current))


def not_synced_message(company_id: str, data_type: str, current: str | None = None) -> str:
    if not current:
        state = "it has never been synced"
    elif is_finished(current):
        state = f"its last sync ended in {current!r}"
    else:
        state = f"its first sync is still running: {current!r}"
    return (
        f"Codat has no completed sync of {data_type!r} for company {company_id} ({state}), so there is no "
        f"data to extract yet. Queue a refresh first (CodatQueueDataTypesOperator with data_types=[{data_type!r}], "
        "or CodatRefreshAllDataOperator), wait for it with CodatSyncSensor, then run the extract."
    )
