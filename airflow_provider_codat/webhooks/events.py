"""What a verified Codat webhook asks Airflow to do: the asset events a ``read.completed`` body stands for.

Codat's ``read.completed`` (and ``read.completed.initial``, after a company's first read) carries the company
and, per data type read, its connection, whether records changed and the read's status. Each type that changed
and completed becomes one asset event on ``codat://{dataType}``, the asset :class:`CodatExtractOperator` emits.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from airflow_provider_codat.datatypes import CATALOGUE
from airflow_provider_codat.errors import MalformedEventError

READ_COMPLETED_EVENTS = frozenset({"read.completed", "read.completed.initial"})
# Marks the events this receiver creates, so consumers can tell them from the extract's own outlet events.
EVENT_SOURCE = "codat-webhook"
_COMPLETE = "Complete"


@dataclass(frozen=True)
class ChangeNotice:
    """One asset event to create: ``extra`` lands on the event of ``asset_uri``.

    :param asset_uri: ``codat://{dataType}``.
    :param extra: ``source``, ``webhook_id``, ``event_type``, ``company_id``, ``data_type``, ``connection_id``,
        ``modified_from_date``.
    """

    asset_uri: str
    extra: dict[str, Any]


def asset_uri(data_type: str) -> str:
    """The asset a data type's extract emits and its webhook events land on."""
    return f"codat://{data_type}"


def event_type_of(body: Any) -> str:
    """The ``eventType`` of a parsed body; :class:`MalformedEventError` when there is none."""
    if not isinstance(body, dict) or not isinstance(body.get("eventType"), str):
        raise MalformedEventError("the body is not a Codat event (a JSON object with eventType)")
    return body["eventType"]


def change_notices(body: dict[str, Any], webhook_id: str) -> list[ChangeNotice]:
    """The asset events a ``read.completed`` body stands for: one per data type in the catalogue whose
    ``recordsModified`` is true and whose status is ``Complete``, each type once.

    :param body: the parsed, verified body.
    :param webhook_id: the delivery's ``webhook-id`` (the same on every retry of a message).
    :raises MalformedEventError: the company id or the data type list is missing or not of the documented shape.
    """
    payload = body.get("payload")
    if not isinstance(payload, dict):
        raise MalformedEventError("read.completed without a payload object")
    company = payload.get("referenceCompany")
    company_id = _uuid(company.get("id") if isinstance(company, dict) else None)
    if company_id is None:
        raise MalformedEventError("read.completed without a valid referenceCompany.id")
    summaries = payload.get("dataTypes")
    if not isinstance(summaries, list):
        raise MalformedEventError("read.completed without a dataTypes list")
    modified_from = payload.get("modifiedFromDate")
    notices: dict[str, ChangeNotice] = {}
    for summary in summaries:
        if not isinstance(summary, dict):
            raise MalformedEventError("read.completed with a dataTypes entry that is not an object")
        data_type = summary.get("dataType")
        if (
            data_type not in CATALOGUE
            or summary.get("recordsModified") is not True
            or summary.get("status") != _COMPLETE
            or data_type in notices
        ):
            continue
        notices[data_type] = ChangeNotice(
            asset_uri(data_type),
            {
                "source": EVENT_SOURCE,
                "webhook_id": webhook_id,
                "event_type": body["eventType"],
                "company_id": company_id,
                "data_type": data_type,
                "connection_id": _uuid(summary.get("connectionId")),
                "modified_from_date": modified_from if isinstance(modified_from, str) else None,
            },
        )
    return list(notices.values())


def _uuid(value: Any) -> str | None:
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None
