"""Hand accepted deliveries to Airflow off the request path: a queue and one thread that writes asset events.

Codat wants an answer within 15 seconds. The request only verifies and queues; this thread opens the database
session, so a slow metadata database delays the asset events, never the answer. A write that fails is retried
with backoff a bounded number of times; after that the events are dropped with an error in the log, and the
daily sync DAG picks the changes up (docs/webhooks.md).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow_provider_codat.webhooks.dedupe import DEFAULT_TTL_SECONDS
from airflow_provider_codat.webhooks.events import ChangeNotice
from airflow_provider_codat.webhooks.requeue import requeue_unconsumed

log = logging.getLogger(__name__)

DEFAULT_QUEUE_SIZE = 10_000
DEFAULT_ATTEMPTS = 5
DEFAULT_BACKOFF_SECONDS = 1.0

DEFAULT_FOLLOW_UP_SECONDS = 2.0
DEFAULT_FOLLOW_UP_FOR = 3600.0

# Writes one delivery's notices; returns the ids of the asset events created.
Writer = Callable[[Sequence[ChangeNotice]], "list[int] | None"]
# Given event ids, returns those still waiting to be consumed by a run.
FollowUp = Callable[[Iterable[int]], "set[int]"]


def write_asset_events(notices: Sequence[ChangeNotice]) -> list[int]:
    """Create one asset event per notice in one transaction, the way Airflow's ``POST /api/v2/assets/events``
    does (``asset_manager.register_asset_change``), which also queues the DAGs scheduled on the assets.

    An asset no DAG refers to has no row in Airflow's database: its notice is skipped with a warning. A notice
    whose event is already in the database (the same ``webhook-id`` and company, written by another API server
    process in the last 30 hours) is skipped too: the database is the memory every process shares.
    Returns the ids of the events created.
    """
    from airflow.assets.manager import asset_manager
    from airflow.models.asset import AssetModel
    from airflow.sdk import Asset
    from airflow.utils.session import create_session
    from sqlalchemy import select

    created: list[int] = []
    with create_session() as session:
        for notice in notices:
            # Airflow stores the normalised URI (codat://invoices/), as the extract's outlet declares it.
            uri = Asset(notice.asset_uri).uri
            asset = session.scalar(
                select(AssetModel).where(AssetModel.uri == uri).order_by(AssetModel.id).limit(1)
            )
            if asset is None:
                log.warning(
                    "No DAG uses the asset %s, so Codat's change to it schedules nothing.", notice.asset_uri
                )
                continue
            if _already_written(session, asset.id, notice):
                log.info(
                    "Codat webhook %s: the event on %s is already recorded (another API server process took "
                    "this delivery); not written again.",
                    notice.extra.get("webhook_id"),
                    notice.asset_uri,
                )
                continue
            event = asset_manager.register_asset_change(
                asset=asset, extra=notice.extra, source_is_api=True, api_user_teams=set(), session=session
            )
            if event is not None:
                created.append(event.id)
    return created


def _already_written(session: Any, asset_id: int, notice: ChangeNotice) -> bool:
    """Whether an event of this delivery (``webhook_id``) and company is on the asset, within the time Codat
    retries a message (the ``(asset_id, timestamp)`` index bounds the search)."""
    from airflow.models.asset import AssetEvent
    from sqlalchemy import select

    from airflow_provider_codat.version_compat import asset_event_extra

    extra = asset_event_extra()
    cutoff = datetime.now(tz=UTC) - timedelta(seconds=DEFAULT_TTL_SECONDS)
    found = session.scalar(
        select(AssetEvent.id)
        .where(
            AssetEvent.asset_id == asset_id,
            AssetEvent.timestamp >= cutoff,
            extra["webhook_id"].as_string() == str(notice.extra.get("webhook_id")),
            extra["company_id"].as_string() == str(notice.company_id),
        )
        .limit(1)
    )
    return found is not None


class AssetEventPublisher:
    """Queue of accepted deliveries and the daemon thread that writes them (started on first use).

    :param writer: writes one delivery's notices (default :func:`write_asset_events`).
    :param follow_up: called every ``follow_up_every`` seconds with the events written and not yet consumed by a
        run, for up to ``follow_up_for`` seconds (default :func:`~.requeue.requeue_unconsumed`; ``None``: off).
    :param max_queued: deliveries waiting at most; beyond, :meth:`submit` refuses (the sender retries later).
    :param attempts: writes tried per delivery.
    :param backoff: seconds before the second attempt, doubling after each failure.
    """

    def __init__(
        self,
        writer: Writer = write_asset_events,
        *,
        follow_up: FollowUp | None = requeue_unconsumed,
        follow_up_every: float = DEFAULT_FOLLOW_UP_SECONDS,
        follow_up_for: float = DEFAULT_FOLLOW_UP_FOR,
        max_queued: int = DEFAULT_QUEUE_SIZE,
        attempts: int = DEFAULT_ATTEMPTS,
        backoff: float = DEFAULT_BACKOFF_SECONDS,
    ) -> None:
        self._writer = writer
        self._queue: queue.Queue[tuple[str, list[ChangeNotice]]] = queue.Queue(max_queued)
        self.attempts = attempts
        self.backoff = backoff
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.written = 0
        self.dropped = 0
        self._follow_up = follow_up
        self.follow_up_every = follow_up_every
        self.follow_up_for = follow_up_for
        self._unconsumed: dict[int, float] = {}  # event id -> when written

    def submit(self, webhook_id: str, notices: list[ChangeNotice]) -> bool:
        """Queue one delivery's notices without blocking; ``False`` when the queue is full."""
        self._ensure_thread()
        try:
            self._queue.put_nowait((webhook_id, notices))
        except queue.Full:
            return False
        return True

    def join(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is written or dropped (tests, benchmarks); ``True`` if so."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="codat-webhook-publisher", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        next_check = time.monotonic() + self.follow_up_every
        while True:
            try:
                item = self._queue.get(timeout=self.follow_up_every if self._unconsumed else None)
            except queue.Empty:
                item = None
            if item is not None:
                try:
                    self._write(*item)
                finally:
                    self._queue.task_done()
            if self._unconsumed and time.monotonic() >= next_check:
                self._check_consumed()
                next_check = time.monotonic() + self.follow_up_every

    def _check_consumed(self) -> None:
        now = time.monotonic()
        try:
            pending = self._follow_up(list(self._unconsumed))
        except Exception:
            log.warning("Could not check whether Codat webhook asset events were consumed", exc_info=True)
            return
        self._unconsumed = {
            event_id: written
            for event_id, written in self._unconsumed.items()
            if event_id in pending and now - written < self.follow_up_for
        }

    def _write(self, webhook_id: str, notices: list[ChangeNotice]) -> None:
        delay = self.backoff
        for attempt in range(1, self.attempts + 1):
            try:
                created = self._writer(notices)
            except Exception:
                if attempt == self.attempts:
                    self.dropped += 1
                    log.exception(
                        "Codat webhook %s: %d asset events could not be written after %d attempts; the "
                        "daily sync DAG will pick the changes up.",
                        webhook_id,
                        len(notices),
                        attempt,
                    )
                    return
                log.warning(
                    "Codat webhook %s: writing asset events failed (attempt %d of %d); retrying in %.1f s",
                    webhook_id,
                    attempt,
                    self.attempts,
                    delay,
                    exc_info=True,
                )
                time.sleep(delay)
                delay *= 2
            else:
                self.written += 1
                if self._follow_up is not None:
                    self._unconsumed.update(dict.fromkeys(created or (), time.monotonic()))
                log.info("Codat webhook %s: %d asset events created", webhook_id, len(notices))
                return
