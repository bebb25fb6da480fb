"""Codat's company and connection webhooks as asset events: what a data team must know between syncs.

``connection.disconnected`` and ``connection.failed`` mean the company's data goes stale until it links
again; ``connection.reconnected`` says it did. Each becomes an event on ``codat://connection-status`` (the
monthly ``relink_report`` reads them, the Assets page lists them). ``company.deleted`` becomes an event on
``codat://deleted-companies``, so the company's landed data does not silently stay "current": a table step
reads that asset (its inlet events) to mark or drop the company.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from airflow_provider_codat.assets import CONNECTION_STATUS_URI, DELETED_COMPANIES_URI
from airflow_provider_codat.errors import CodatValidationError, MalformedEventError
from airflow_provider_codat.values import CompanyId, ConnectionId

CONNECTION_EVENTS = frozenset({"connection.disconnected", "connection.failed", "connection.reconnected"})
COMPANY_DELETED = "company.deleted"


@dataclass(frozen=True)
class StatusNotice:
    """One asset event to create for a status Codat reported.

    :param asset_uri: the asset the event lands on.
    :param extra: plain JSON for the event.
    """

    asset_uri: str
    extra: dict[str, Any]


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _payload(body: dict[str, Any], event_type: str) -> dict[str, Any]:
    payload = body.get("payload")
    if not isinstance(payload, dict):
        raise MalformedEventError(f"{event_type} without a payload object")
    return payload


def _checked_company(value: Any, event_type: str) -> str:
    try:
        return str(CompanyId.parse(value))
    except CodatValidationError:
        raise MalformedEventError(f"{event_type} without a valid company id") from None


def connection_notice(body: dict[str, Any], common: dict[str, Any]) -> StatusNotice:
    """The ``codat://connection-status`` event of a ``connection.*`` body.

    :param body: the parsed, verified body.
    :param common: ``source``, ``webhook_id`` and ``event_type``.
    :raises MalformedEventError: no payload object or no valid company id.
    """
    payload = _payload(body, common["event_type"])
    company = payload.get("referenceCompany")
    company = company if isinstance(company, dict) else {}
    connection = payload.get("connection")
    connection = connection if isinstance(connection, dict) else {}
    try:
        connection_id: str | None = str(ConnectionId.parse(connection.get("id")))
    except CodatValidationError:
        connection_id = None
    extra = {
        **common,
        "company_id": _checked_company(company.get("id"), common["event_type"]),
        "company_name": _text(company.get("name")),
        "connection_id": connection_id,
        "platform": _text(connection.get("platformName")),
        "status": _text(connection.get("status")),
        "link_url": _text(connection.get("linkUrl")),
        "generated_date": _text(body.get("generatedDate")),
    }
    return StatusNotice(CONNECTION_STATUS_URI, extra)


def company_deleted_notice(body: dict[str, Any], common: dict[str, Any]) -> StatusNotice:
    """The ``codat://deleted-companies`` event of a ``company.deleted`` body.

    :param body: the parsed, verified body.
    :param common: ``source``, ``webhook_id`` and ``event_type``.
    :raises MalformedEventError: no payload object or no valid company id.
    """
    payload = _payload(body, COMPANY_DELETED)
    extra = {
        **common,
        "company_id": _checked_company(payload.get("id"), COMPANY_DELETED),
        "company_name": _text(payload.get("name")),
        "deleted_at": _text(body.get("generatedDate")),
    }
    return StatusNotice(DELETED_COMPANIES_URI, extra)
