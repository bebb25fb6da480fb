"""A verified delivery, and what storing it means: the asset events its event type stands for.

=================================  ==============================================================
``read.completed(.initial)``       one event per changed data type on ``codat://{dataType}``
``connection.disconnected/failed``  one event on ``codat://connection-status`` (also ``reconnected``)
``company.deleted``                one event on ``codat://deleted-companies``
``client.rateLimit.reached/reset``  one event on ``codat://rate-limit`` (:func:`note_rate_limit_event`)
anything else                      nothing: answered 2xx and not stored
=================================  ==============================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from airflow_provider_codat.values import CompanyId
from airflow_provider_codat.webhooks.events import EVENT_SOURCE, READ_COMPLETED_EVENTS, change_notices
from airflow_provider_codat.webhooks.lifecycle import (
    COMPANY_DELETED,
    CONNECTION_EVENTS,
    company_deleted_notice,
    connection_notice,
)
from airflow_provider_codat.webhooks.rate_limit_events import RATE_LIMIT_EVENTS, note_rate_limit_event

HANDLED_EVENTS = READ_COMPLETED_EVENTS | CONNECTION_EVENTS | {COMPANY_DELETED} | RATE_LIMIT_EVENTS


class AssetNotice(Protocol):
    """One asset event to create: ``extra`` on the asset ``asset_uri``."""

    @property
    def asset_uri(self) -> str: ...

    @property
    def extra(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Delivery:
    """A verified delivery of a handled event type, to be stored once.

    :param webhook_id: the ``webhook-id`` header (the same on every retry of a message).
    :param event_type: the body's ``eventType``.
    :param company_id: the company it is about (``None`` for client-wide events).
    :param notices: the asset events to write with it (may be empty: a read with nothing changed).
    """

    webhook_id: str
    event_type: str
    company_id: str | None
    notices: list[AssetNotice]


def delivery_of(body: dict[str, Any], event_type: str, webhook_id: str) -> Delivery | None:
    """The delivery to store for a verified body; ``None`` for event types this receiver ignores.

    :raises MalformedEventError: a handled event type whose body lacks what the type documents.
    """
    common = {"source": EVENT_SOURCE, "webhook_id": webhook_id, "event_type": event_type}
    if event_type in READ_COMPLETED_EVENTS:
        # Quiet reads too (records_modified false): the portfolio path notes them; no asset event is written.
        notices: list[AssetNotice] = list(change_notices(body, webhook_id, include_unchanged=True))
        company = CompanyId.parse(body["payload"]["referenceCompany"]["id"])  # checked by change_notices
        return Delivery(webhook_id, event_type, str(company), notices)
    if event_type in CONNECTION_EVENTS:
        notice = connection_notice(body, common)
    elif event_type == COMPANY_DELETED:
        notice = company_deleted_notice(body, common)
    elif event_type in RATE_LIMIT_EVENTS:
        notice = note_rate_limit_event(body, common)
    else:
        return None
    return Delivery(webhook_id, event_type, notice.extra.get("company_id"), [notice])
