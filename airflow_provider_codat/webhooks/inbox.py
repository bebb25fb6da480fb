"""The inbox: one row per stored Codat delivery, keyed by its ``webhook-id``, in Airflow's metadata database.

The receiver inserts the row (with the asset events the delivery stands for, as JSON) before it answers; the
drainer (:mod:`.drain`) writes those asset events and sets ``processed_at`` in one transaction. The primary key
is what makes a delivery count once across API server processes and replicas: the insert is ``ON CONFLICT DO
NOTHING``, so of two copies racing, the database lets one insert and makes the other wait for its commit and
then find the row; a look-up followed by a write could not promise that. The table belongs to this provider
(Airflow's migrations do not know it): it is created on first use, and processed rows older than
:data:`KEEP_DAYS` are pruned.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
)
from sqlalchemy.exc import IntegrityError

from airflow_provider_codat.own_tables import OwnTables

log = logging.getLogger(__name__)

TABLE_NAME = "codat_webhook_inbox"
# Codat retries a message for about 28 hours; a week of ids is plenty and keeps the table small.
KEEP_DAYS = 7
PRUNE_EVERY_SECONDS = 3600.0

_metadata = MetaData()
INBOX = Table(
    TABLE_NAME,
    _metadata,
    Column("webhook_id", String(128), primary_key=True),
    Column("event_type", String(128), nullable=False),
    Column("company_id", String(64), nullable=True),
    # The asset events to write: [{"asset_uri": ..., "extra": {...}}] (JSON text: every database has it).
    Column("notices", Text, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("processed_at", DateTime(timezone=True), nullable=True, index=True),
    Column("asset_events", Integer, nullable=True),
)


class InboxTable(OwnTables):
    """Creates the inbox table once per process (idempotently, also when processes race to create it), and
    prunes old rows at most every :data:`PRUNE_EVERY_SECONDS`."""

    def __init__(self) -> None:
        super().__init__([INBOX])
        self._pruned_at: float | None = None

    def prune_due(self) -> bool:
        """Whether this process should prune now (and note that it does)."""
        now = time.monotonic()
        with self._lock:
            if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY_SECONDS:
                return False
            self._pruned_at = now
            return True


def claim(connection: Any, webhook_id: str, event_type: str, company_id: str | None, notices: str) -> bool:
    """Insert the delivery's row in ``connection``'s transaction; ``False`` when the id is already there.

    The insert itself decides (``ON CONFLICT DO NOTHING`` on Postgres and SQLite; elsewhere the constraint's
    error inside a savepoint), so two processes claiming one id at once get one ``True`` between them.

    :param notices: the asset events to write, as JSON text.
    """
    row = {
        "webhook_id": webhook_id,
        "event_type": event_type,
        "company_id": company_id,
        "notices": notices,
        "received_at": datetime.now(tz=UTC),
    }
    dialect = connection.dialect.name
    if dialect in ("postgresql", "sqlite"):
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        statement = dialect_insert(INBOX).values(**row).on_conflict_do_nothing(index_elements=["webhook_id"])
        return connection.execute(statement).rowcount == 1
    try:
        with connection.begin_nested():
            connection.execute(insert(INBOX).values(**row))
    except IntegrityError:
        return False
    return True


def prune(session: Any, keep_days: int = KEEP_DAYS) -> int:
    """Delete processed rows older than ``keep_days``; the number deleted."""
    cutoff = datetime.now(tz=UTC) - timedelta(days=keep_days)
    return session.execute(delete(INBOX).where(INBOX.c.processed_at < cutoff)).rowcount


def has_undrained(engine: Any) -> bool:
    """Whether a stored delivery still waits for its asset events.

    :param engine: Airflow's metadata database engine, the table ensured on it (:meth:`InboxTable.engine`).
    """
    with engine.connect() as connection:
        waiting = select(INBOX.c.webhook_id).where(INBOX.c.processed_at.is_(None)).limit(1)
        return connection.execute(waiting).first() is not None
