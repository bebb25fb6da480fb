"""Store a verified delivery durably before it is answered: one row in the inbox, one short transaction.

The receiver answers ``2xx`` only once :func:`store_delivery` has returned, so an API server killed at any
instant loses no delivery Codat was told had arrived; when the database fails, the receiver answers ``5xx``
and Codat sends the message again. The row carries the asset events the delivery stands for; the drainer
(:mod:`.drain`) writes them. The row's primary key (``webhook-id``) makes the second of two copies find the
first's row and store nothing (:mod:`.inbox`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from airflow_provider_codat.health.record import record_connections
from airflow_provider_codat.health.schema import TABLES as HEALTH_TABLES
from airflow_provider_codat.webhooks.deliveries import AssetNotice, Delivery
from airflow_provider_codat.webhooks.inbox import InboxTable, claim
from airflow_provider_codat.webhooks.lifecycle import CONNECTION_EVENTS, StatusNotice

TABLE = InboxTable()


@dataclass(frozen=True)
class Stored:
    """What storing a delivery did.

    :param duplicate: the ``webhook-id`` was already stored (by this or another process): nothing stored.
    """

    duplicate: bool


def notices_json(notices: Sequence[AssetNotice]) -> str:
    """The notices as the inbox keeps them."""
    return json.dumps([{"asset_uri": n.asset_uri, "extra": n.extra} for n in notices], separators=(",", ":"))


def notices_from_json(text: str) -> list[StatusNotice]:
    """The notices an inbox row keeps."""
    return [StatusNotice(item["asset_uri"], item["extra"]) for item in json.loads(text)]


def store_delivery(delivery: Delivery) -> Stored:
    """Insert the delivery's inbox row (its ``webhook-id`` and asset events to write) and commit.

    One statement on a plain connection of Airflow's engine (no ORM session: this is on every answer's path).

    :raises Exception: whatever the database raised; nothing of the delivery is then stored.
    """
    with TABLE.engine().begin() as connection:
        new = claim(
            connection,
            delivery.webhook_id,
            delivery.event_type,
            delivery.company_id,
            notices_json(delivery.notices),
        )
        if new and delivery.event_type in CONNECTION_EVENTS:
            # The health page's connection status, in the same transaction as the delivery's row.
            HEALTH_TABLES.ensure(connection)
            record_connections(connection, (n.extra for n in delivery.notices), at=datetime.now(tz=UTC))
    return Stored(duplicate=not new)
