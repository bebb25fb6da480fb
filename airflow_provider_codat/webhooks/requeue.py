"""Make sure every asset event the receiver wrote starts a run of each DAG scheduled on its asset.

Airflow (3.3 here) keeps one queue row per (asset, DAG) and, when it creates the run, takes the events up to the
newest row's time and deletes the rows. An event on an asset whose row already existed, written after the newest
row but before the run was created, is left out of that run and has no row left to start another: it waits for
some unrelated later event (apache/airflow#54659, #56050). Webhooks arrive in bursts, so this happens.

The publisher calls :func:`requeue_unconsumed` for the events it wrote until each is consumed: an event that an
unpaused DAG scheduled on its asset has not consumed, with no queue row pending for that pair, gets its row back,
and the scheduler's next run takes it (its window starts at the previous run). Consumption and row deletion
happen in one transaction, so a row is never added for an event a run is about to take.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

log = logging.getLogger(__name__)


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
