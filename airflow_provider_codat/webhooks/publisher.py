"""Write a delivery's asset events into Airflow's metadata database, in the caller's transaction.

Each event is created the way Airflow's ``POST /api/v2/assets/events`` does
(``asset_manager.register_asset_change``), which also queues the DAGs scheduled on the asset. The caller
(:mod:`.drain`) commits them together with the inbox row's ``processed_at``, or not at all.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_codat.webhooks.deliveries import AssetNotice

log = logging.getLogger(__name__)


def write_asset_events(session: Any, notices: Sequence[AssetNotice]) -> list[int]:
    """Create one asset event per notice in ``session`` (not committed); the ids of the events created.

    An asset no DAG refers to has no row in Airflow's database: its notice is skipped with a warning (the
    delivery is still stored, so its retries are not written later either).
    """
    from airflow.assets.manager import asset_manager
    from airflow.models.asset import AssetModel
    from airflow.sdk import Asset
    from sqlalchemy import select

    created: list[int] = []
    for notice in notices:
        # Airflow stores the normalised URI (codat://invoices/), as the extract's outlet declares it.
        uri = Asset(notice.asset_uri).uri
        asset = session.scalar(
            select(AssetModel).where(AssetModel.uri == uri).order_by(AssetModel.id).limit(1)
        )
        if asset is None:
            log.warning(
                "No DAG uses the asset %s, so Codat's event on it schedules nothing.", notice.asset_uri
            )
            continue
        event = asset_manager.register_asset_change(
            asset=asset, extra=notice.extra, source_is_api=True, api_user_teams=set(), session=session
        )
        if event is not None:
            created.append(event.id)
    return created
