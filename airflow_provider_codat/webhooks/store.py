"""Store a verified delivery durably before it is answered: its inbox row and its asset events, one transaction.

The receiver answers ``2xx`` only once :func:`store_delivery` has returned, so an API server killed at any
instant loses no delivery Codat was told had arrived; when the database fails, the receiver answers ``5xx``
and Codat sends the message again. The inbox row's primary key (``webhook-id``) makes the second of two copies
find the first's row and write nothing (:mod:`.inbox`).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from sqlalchemy import update

from airflow_provider_codat.webhooks.deliveries import Delivery
from airflow_provider_codat.webhooks.inbox import INBOX, InboxTable, claim, prune
from airflow_provider_codat.webhooks.publisher import write_asset_events

log = logging.getLogger(__name__)

_TABLE = InboxTable()


@dataclass(frozen=True)
class Stored:
    """What storing a delivery did.

    :param duplicate: the ``webhook-id`` was already stored (by this or another process): nothing written.
    :param event_ids: the ids of the asset events created.
    """

    duplicate: bool
    event_ids: list[int] = field(default_factory=list)


def store_delivery(delivery: Delivery) -> Stored:
    """Claim the delivery's ``webhook-id`` and write its asset events in one committed transaction.

    :raises Exception: whatever the database raised; nothing of the delivery is then stored.
    """
    from airflow.utils.session import create_session

    with create_session() as session:
        _TABLE.ensure(session.get_bind())
        if not claim(session, delivery.webhook_id, delivery.event_type, delivery.company_id, 0):
            return Stored(duplicate=True)
        created = write_asset_events(session, delivery.notices)
        if created:
            session.execute(
                update(INBOX)
                .where(INBOX.c.webhook_id == delivery.webhook_id)
                .values(asset_events=len(created))
            )
    log.info(
        "Codat webhook %s (%s): %d asset events created",
        delivery.webhook_id,
        delivery.event_type,
        len(created),
    )
    if _TABLE.prune_due():
        threading.Thread(target=_prune_quietly, name="codat-webhook-inbox-prune", daemon=True).start()
    return Stored(duplicate=False, event_ids=created)


def _prune_quietly() -> None:
    """Delete old inbox rows; a failure only delays that to the next hour."""
    from airflow.utils.session import create_session

    try:
        with create_session() as session:
            deleted = prune(session)
    except Exception:
        log.warning("Could not prune old Codat webhook inbox rows", exc_info=True)
        return
    if deleted:
        log.info("Pruned %d Codat webhook inbox rows older than a week", deleted)
