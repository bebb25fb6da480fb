"""What a verified Codat webhook asks Airflow to do: the asset events a ``read.completed`` body stands for.

Codat's ``read.completed`` (and ``read.completed.initial``, after a company's first read) carries the company
and, per data type read, its connection, whether records changed and the read's status. Each type that changed
and completed becomes one asset event on ``codat://{dataType}``, the asset :class:`CodatExtractOperator` emits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from airflow_provider_codat.assets import asset_uri
from airflow_provider_codat.datatypes import DataType, get_data_type
from airflow_provider_codat.errors import CodatValidationError, MalformedEventError
from airflow_provider_codat.values import CompanyId, ConnectionId

READ_COMPLETED_EVENTS = frozenset({"read.completed", "read.completed.initial"})
# Marks the events this receiver creates, so consumers can tell them from the extract's own outlet events.
EVENT_SOURCE = "codat-webhook"
_COMPLETE = "Complete"


@dataclass(frozen=True)
class ChangeNotice:
    """One asset event to create: ``extra`` lands on the event of :attr:`asset_uri`.

    :param company_id: the company whose data changed (checked).
    :param data_type: the catalogue entry of the data type that changed.
    :param extra: plain JSON for the event: ``source``, ``webhook_id``, ``event_type``, ``company_id``,
        ``data_type``, ``connection_id``, ``modified_from_date``.
    """

    company_id: CompanyId
    data_type: DataType
    extra: dict[str, Any]

    @property
    def asset_uri(self) -> str:
        """``codat://{dataType}``."""
        return asset_uri(self.data_type)


def event_type_of(body: Any) -> str:
    """The ``eventType`` of a parsed body; :class:`MalformedEventError` when there is none."""
    if not isinstance(body, dict) or not isinstance(body.get("eventType"), str):
        raise MalformedEventError("the body is not a Codat event (a JSON object with eventType)")
    return body["eventType"]


def change_notices(
    body: dict[str, Any], webhook_id: str, *, include_unchanged: bool = False
) -> list[ChangeNotice]:
    """The asset events a ``read.completed`` body stands for: one per data type in the catalogue whose
    ``recordsModified`` is true and whose status is ``Complete``, each type once.

    :param body: the parsed, verified body.
    :param webhook_id: the delivery's ``webhook-id`` (the same on every retry of a message).
    :param include_unchanged: also a notice (``records_modified: false``) per type read completely with
        nothing changed: the portfolio path notes that Codat synced it (``portfolio/marks.py``); no asset
        event is written for those (:func:`is_change`).
    :raises MalformedEventError: the company id or the data type list is missing or not of the documented shape.
    """
    payload = body.get("payload")
    if not isinstance(payload, dict):
        raise MalformedEventError("read.completed without a payload object")
    company_id = _company_id(payload.get("referenceCompany"))
    summaries = payload.get("dataTypes")
    if not isinstance(summaries, list):
        raise MalformedEventError("read.completed without a dataTypes list")
    modified_from = payload.get("modifiedFromDate")
    generated = body.get("generatedDate")
    common = {
        "source": EVENT_SOURCE,
        "webhook_id": webhook_id,
        "event_type": body["eventType"],
        "company_id": str(company_id),
    }
    notices: dict[str, ChangeNotice] = {}
    for summary in summaries:
        data_type = _changed_type(summary, include_unchanged)
        if data_type is None or (data_type.key in notices and is_change(notices[data_type.key].extra)):
            continue
        connection_id = _optional_id(ConnectionId, summary.get("connectionId"))
        extra = {
            **common,
            "data_type": data_type.key,
            "connection_id": None if connection_id is None else str(connection_id),
            "modified_from_date": modified_from if isinstance(modified_from, str) else None,
            "generated_date": generated if isinstance(generated, str) else None,
        }
        if summary.get("recordsModified") is not True:
            extra["records_modified"] = False
        notices[data_type.key] = ChangeNotice(company_id, data_type, extra)
    return list(notices.values())


def _company_id(company: Any) -> CompanyId:
    """The payload's ``referenceCompany.id``, checked; :class:`MalformedEventError` when it is not a company id."""
    company_id = _optional_id(CompanyId, company.get("id") if isinstance(company, dict) else None)
    if company_id is None:
        raise MalformedEventError("read.completed without a valid referenceCompany.id")
    return company_id


def is_change(extra: dict[str, Any]) -> bool:
    """A notice's extra says records changed (not a ``records_modified: false`` notice of a quiet read)."""
    return extra.get("records_modified", True) is not False


def _changed_type(summary: Any, include_unchanged: bool = False) -> DataType | None:
    """The catalogue entry of a ``dataTypes`` entry that reports changed records (or, with
    ``include_unchanged``, any) and a complete read; ``None`` for the others (a type the catalogue lacks,
    nothing modified, a failed read)."""
    if not isinstance(summary, dict):
        raise MalformedEventError("read.completed with a dataTypes entry that is not an object")
    if summary.get("status") != _COMPLETE:
        return None
    if summary.get("recordsModified") is not True and not include_unchanged:
        return None
    try:
        return get_data_type(summary.get("dataType"))
    except CodatValidationError:
        return None


def _optional_id(kind: type[CompanyId] | type[ConnectionId], value: Any) -> Any:
    """``value`` parsed as ``kind`` (:meth:`~airflow_provider_codat.values.CodatId.parse`), or ``None`` when it
    is not one."""
    try:
        return kind.parse(value)
    except CodatValidationError:
        return None
