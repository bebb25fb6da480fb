"""Turn stored deliveries into asset events: each inbox row's events and its ``processed_at``, one transaction.

Every API server process has one drainer (:class:`InboxDrainer`, a thread in a process of its own:
:mod:`.drainer_process`; started by its first delivery, woken by each new one, and looking every few seconds
anyway), so rows a killed process stored but did not drain are drained by another process's drainer or by the
restarted one's. A row is taken with ``UPDATE ... WHERE processed_at IS NULL`` in the
transaction that writes its events (on Postgres the rows are also locked with ``SKIP LOCKED``, so drainers
share the work instead of waiting on each other): two drainers never write one row's events twice. A database
failure rolls the batch back; it is tried again, never dropped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError

from airflow_provider_codat.webhooks.events import READ_COMPLETED_EVENTS, is_change
from airflow_provider_codat.webhooks.inbox import INBOX, prune
from airflow_provider_codat.webhooks.publisher import write_asset_events
from airflow_provider_codat.webhooks.requeue import RequeueWatcher
from airflow_provider_codat.webhooks.store import TABLE, notices_from_json

log = logging.getLogger(__name__)

DEFAULT_BATCH = 100
DEFAULT_EVERY_SECONDS = 2.0


def drain_inbox(limit: int = DEFAULT_BATCH) -> tuple[list[int], int]:
    """Write the asset events of up to ``limit`` unprocessed rows, oldest first, in one transaction; the ids
    of the events created and the number of rows looked at."""
    from airflow.utils.session import create_session

    from airflow_provider_codat.portfolio.route import ROUTE_PORTFOLIO, drain_read_completed, webhook_route

    created: list[int] = []
    waiting = [INBOX.c.processed_at.is_(None)]
    if webhook_route() == ROUTE_PORTFOLIO:
        # read.completed deliveries gather for a window and become one event (portfolio/route.py).
        from airflow_provider_codat.portfolio.route import window_seconds

        with create_session() as session:
            TABLE.ensure(session.get_bind())
            created, _ = drain_read_completed(session, window=window_seconds())
        waiting.append(INBOX.c.event_type.not_in(sorted(READ_COMPLETED_EVENTS)))
    with create_session() as session:
        TABLE.ensure(session.get_bind())
        query = (
            select(INBOX.c.webhook_id, INBOX.c.notices)
            .where(*waiting)
            .order_by(INBOX.c.received_at)
            .limit(limit)
        )
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = session.execute(query).all()
        for webhook_id, notices in rows:
            created.extend(_drain_row(session, webhook_id, notices))
    return created, len(rows)


def _drain_row(session, webhook_id: str, notices: str) -> list[int]:
    """Take one row (unless another drainer did) and write its events; a row whose events can not be written
    for a reason other than the database is marked done with an error in the log, so it blocks nothing."""
    row = INBOX.c.webhook_id == webhook_id
    taken = session.execute(
        update(INBOX).where(row, INBOX.c.processed_at.is_(None)).values(processed_at=datetime.now(tz=UTC))
    ).rowcount
    if taken != 1:
        return []
    try:
        with session.begin_nested():
            # Quiet reads (records_modified false) are for the portfolio path: no asset event.
            changes = [n for n in notices_from_json(notices) if is_change(n.extra)]
            created = write_asset_events(session, changes)
    except DBAPIError:
        raise
    except Exception:
        log.exception("Codat webhook %s: its asset events could not be written; skipped", webhook_id)
        created = []
    session.execute(update(INBOX).where(row).values(asset_events=len(created)))
    if created:
        log.info("Codat webhook %s: %d asset events created", webhook_id, len(created))
    return created


class InboxDrainer:
    """The drainer thread (of the drainer process, :mod:`.drainer_process`).

    :param drain: drains one batch (default :func:`drain_inbox`).
    :param watcher: follows the events written until a run consumed them (``None``: off).
    :param every: seconds between looks when nothing wakes it.
    :param batch: rows per transaction.
    """

    def __init__(
        self,
        drain: Callable[[int], tuple[list[int], int]] = drain_inbox,
        *,
        watcher: RequeueWatcher | None = None,
        every: float = DEFAULT_EVERY_SECONDS,
        batch: int = DEFAULT_BATCH,
    ) -> None:
        self._drain = drain
        self.watcher = watcher
        self.every = every
        self.batch = batch
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.failures = 0

    def wake(self) -> None:
        """Drain soon (a delivery was stored); starts the thread on first use (no I/O here)."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="codat-webhook-drainer", daemon=True)
                self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait(self.every)
            self._wake.clear()
            self.drain_all()
            if TABLE.prune_due():
                _prune_quietly()

    def drain_all(self) -> bool:
        """Drain batches until one comes back short; ``False`` when the database failed (tried again on the
        next look)."""
        while True:
            try:
                created, looked_at = self._drain(self.batch)
            except Exception:
                self.failures += 1
                log.warning("Draining Codat webhook deliveries failed; trying again shortly", exc_info=True)
                return False
            if self.watcher is not None:
                self.watcher.watch(created)
            if looked_at < self.batch:
                return True


def _prune_quietly() -> None:
    """Delete old processed inbox rows; a failure only delays that to the next hour."""
    from airflow.utils.session import create_session

    try:
        with create_session() as session:
            deleted = prune(session)
    except Exception:
        log.warning("Could not prune old Codat webhook inbox rows", exc_info=True)
        return
    if deleted:
        log.info("Pruned %d processed Codat webhook inbox rows older than a week", deleted)
