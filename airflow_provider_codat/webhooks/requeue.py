"""Make sure every asset event the receiver wrote starts a run of each DAG scheduled on its asset.

Airflow (3.3 here) keeps one queue row per (asset, DAG) and, when it creates the run, takes the events up to the
newest row's time and deletes the rows. An event on an asset whose row already existed, written after the newest
row but before the run was created, is left out of that run and has no row left to start another: it waits for
some unrelated later event (apache/airflow#54659, #56050). Webhooks arrive in bursts, so this happens.

:class:`RequeueWatcher` calls :func:`requeue_unconsumed` for the events the receiver wrote until each is consumed: an event that an
unpaused DAG scheduled on its asset has not consumed, with no queue row pending for that pair, gets its row back,
and the scheduler's next run takes it (its window starts at the previous run). Consumption and row deletion
happen in one transaction, so a row is never added for an event a run is about to take.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

log = logging.getLogger(__name__)

DEFAULT_FOLLOW_UP_SECONDS = 2.0
DEFAULT_FOLLOW_UP_FOR = 3600.0

# Given event ids, returns those still waiting to be consumed by a run.
FollowUp = Callable[[Iterable[int]], "set[int]"]


def requeue_unconsumed(event_ids: Iterable[int]) -> set[int]:
    """Re-queue the DAG runs the events of ``event_ids`` should have started; return the ids not yet consumed
    by every unpaused DAG scheduled on their asset (ask again later), leaving out events that are."""
    from airflow.models.asset import AssetDagRunQueue, AssetEvent, DagScheduleAssetReference
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    pending: set[int] = set()
    added: set[tuple[int, str]] = (
        set()
    )  # rows added in this session (not visible to session.get before flush)
    ids = list(event_ids)
    if not ids:
        return pending
    with create_session() as session:
        for event in session.scalars(select(AssetEvent).where(AssetEvent.id.in_(ids))):
            consumers = {run.dag_id for run in event.created_dagruns}
            scheduled = set(
                session.scalars(
                    select(DagScheduleAssetReference.dag_id)
                    .join(DagModel, DagModel.dag_id == DagScheduleAssetReference.dag_id)
                    .where(
                        DagScheduleAssetReference.asset_id == event.asset_id, DagModel.is_paused.is_(False)
                    )
                )
            )
            for dag_id in scheduled - consumers:
                pending.add(event.id)
                key = {"asset_id": event.asset_id, "target_dag_id": dag_id}
                if (event.asset_id, dag_id) not in added and session.get(AssetDagRunQueue, key) is None:
                    session.add(AssetDagRunQueue(**key))
                    added.add((event.asset_id, dag_id))
                    log.info(
                        "Asset event %s was left out of %s's last run; queued a run to take it",
                        event.id,
                        dag_id,
                    )
    return pending


class RequeueWatcher:
    """Follows up the asset events this process wrote: every ``every`` seconds, for up to ``watch_for``
    seconds each, until a run consumed them. A daemon thread, started on first use.

    The events themselves are already committed: a process that dies only stops this follow-up, which the
    next event on the same asset (or the daily sync) makes up for.

    :param follow_up: given event ids, re-queues what a run left out and returns the ids still pending
        (default :func:`requeue_unconsumed`).
    :param every: seconds between looks.
    :param watch_for: seconds an event is followed at most.
    """

    def __init__(
        self,
        follow_up: FollowUp = requeue_unconsumed,
        *,
        every: float = DEFAULT_FOLLOW_UP_SECONDS,
        watch_for: float = DEFAULT_FOLLOW_UP_FOR,
    ) -> None:
        self._follow_up = follow_up
        self.every = every
        self.watch_for = watch_for
        self._pending: dict[int, float] = {}  # event id -> when written
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def watch(self, event_ids: Iterable[int]) -> None:
        """Follow these event ids up (no I/O)."""
        ids = list(event_ids)
        if not ids:
            return
        now = time.monotonic()
        with self._lock:
            self._pending.update(dict.fromkeys(ids, now))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="codat-webhook-requeue", daemon=True)
                self._thread.start()

    def pending(self) -> set[int]:
        """The event ids still followed."""
        with self._lock:
            return set(self._pending)

    def _run(self) -> None:
        while True:
            time.sleep(self.every)
            with self._lock:
                ids = list(self._pending)
            if ids:
                self.check(ids)

    def check(self, ids: list[int]) -> None:
        """One look: keep following the ids still pending and younger than ``watch_for``."""
        try:
            still = self._follow_up(ids)
        except Exception:
            log.warning("Could not check whether Codat webhook asset events were consumed", exc_info=True)
            return
        now = time.monotonic()
        with self._lock:
            self._pending = {
                event_id: written
                for event_id, written in self._pending.items()
                if event_id not in ids or (event_id in still and now - written < self.watch_for)
            }
