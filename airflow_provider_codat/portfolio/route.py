"""The drainer's side of the portfolio path: many deliveries' changes become one asset event.

With ``[codat] webhook_route = portfolio`` (``AIRFLOW__CODAT__WEBHOOK_ROUTE``), the drainer does not write one
asset event per changed (company, data type), which at 100,000 companies would be some 900,000 asset events a
day. It lets stored ``read.completed`` deliveries gather in the inbox for a window (``[codat]
portfolio_window_seconds``, default 60) and then writes **one** event on ``codat://portfolio-changes`` for up
to :data:`MAX_DELIVERIES` of them, in the transaction that marks their inbox rows processed (durable and
exactly once, as every other delivery). Its extra holds, per company, the data types that changed and those
read with nothing changed, with Codat's ``generatedDate``: :func:`portfolio_extra`. The DAG
``codat_portfolio_changes`` is scheduled on that asset (``dags/codat_portfolio.py``).

So the asset events a day are at most one per window (1,440 at 60 s), whatever the number of companies.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow_provider_codat.landing.records import instant_key
from airflow_provider_codat.webhooks.events import EVENT_SOURCE, READ_COMPLETED_EVENTS, is_change

log = logging.getLogger(__name__)

PORTFOLIO_ASSET = "codat://portfolio-changes"
ROUTE_ASSETS, ROUTE_PORTFOLIO = "assets", "portfolio"
DEFAULT_WINDOW_SECONDS = 60.0
# Deliveries per asset event: the event's extra stays under a few hundred kilobytes.
MAX_DELIVERIES = 1000
PORTFOLIO_KIND = "portfolio-changes"


def webhook_route() -> str:
    """``[codat] webhook_route``: ``assets`` (an event per changed type, ``codat_on_change``) or ``portfolio``."""
    from airflow_provider_codat.version_compat import conf

    route = (conf.get("codat", "webhook_route", fallback=ROUTE_ASSETS) or ROUTE_ASSETS).strip().lower()
    if route not in (ROUTE_ASSETS, ROUTE_PORTFOLIO):
        log.warning("[codat] webhook_route %r is neither 'assets' nor 'portfolio'; using 'assets'", route)
        return ROUTE_ASSETS
    return route


def window_seconds() -> float:
    """``[codat] portfolio_window_seconds``: how long deliveries gather before their event is written."""
    from airflow_provider_codat.version_compat import conf

    try:
        return max(0.0, float(conf.get("codat", "portfolio_window_seconds", fallback=DEFAULT_WINDOW_SECONDS)))
    except ValueError:
        return DEFAULT_WINDOW_SECONDS


def portfolio_extra(rows: Iterable[tuple[str, str | None, Sequence[Any]]]) -> dict[str, Any]:
    """The extra of one ``codat://portfolio-changes`` event for stored deliveries.

    :param rows: ``(webhook_id, company_id, notices)`` per delivery; each notice has ``extra`` as
        :func:`~airflow_provider_codat.webhooks.events.change_notices` builds it.
    :returns: ``{"source", "kind", "deliveries", "companies": {company: {"changed": [types], "heard":
        {type: generatedDate}, "connections": {type: [connection ids]}}}}``: per company the types to read, per
        type read by Codat the latest ``generatedDate`` of the messages that said so (the sweep's record of what
        it need not poll), and the connections the reads came from (so that a connection-scoped type is read
        from them without listing the company's connections).
    """
    companies: dict[str, dict[str, Any]] = {}
    deliveries = 0
    for _webhook_id, company_id, notices in rows:
        deliveries += 1
        for notice in notices:
            extra = notice.extra
            company = extra.get("company_id") or company_id
            data_type = extra.get("data_type")
            if not company or not data_type:
                continue
            entry = companies.setdefault(company, {"changed": [], "heard": {}, "connections": {}})
            if is_change(extra) and data_type not in entry["changed"]:
                entry["changed"].append(data_type)
            connection = extra.get("connection_id")
            known = entry["connections"].setdefault(data_type, [])
            if connection and connection not in known:
                known.append(connection)
            generated = extra.get("generated_date")
            if generated and _later(generated, entry["heard"].get(data_type)):
                entry["heard"][data_type] = generated
    return {"source": EVENT_SOURCE, "kind": PORTFOLIO_KIND, "deliveries": deliveries, "companies": companies}


def _later(candidate: str, current: str | None) -> bool:
    if current is None:
        return True
    try:
        return instant_key(candidate) > instant_key(current)
    except Exception:
        return False


class _Notice:
    """What the publisher needs of a notice: the asset and the extra."""

    def __init__(self, asset_uri: str, extra: dict[str, Any]) -> None:
        self.asset_uri = asset_uri
        self.extra = extra


def drain_read_completed(
    session: Any, *, window: float, limit: int = MAX_DELIVERIES
) -> tuple[list[int], int]:
    """Write one ``codat://portfolio-changes`` event for the waiting ``read.completed`` deliveries, once the
    oldest has waited ``window`` seconds (or ``limit`` are waiting); mark them processed in the same
    transaction (``session``, not committed here). The ids of the events created and the rows taken.
    """
    from sqlalchemy import func, select, update

    from airflow_provider_codat.webhooks.inbox import INBOX
    from airflow_provider_codat.webhooks.publisher import write_asset_events
    from airflow_provider_codat.webhooks.store import notices_from_json

    waiting = (INBOX.c.processed_at.is_(None), INBOX.c.event_type.in_(sorted(READ_COMPLETED_EVENTS)))
    oldest, count = session.execute(select(func.min(INBOX.c.received_at), func.count()).where(*waiting)).one()
    if oldest is None:
        return [], 0
    oldest = oldest if oldest.tzinfo else oldest.replace(tzinfo=UTC)
    if count < limit and datetime.now(tz=UTC) - oldest < timedelta(seconds=window):
        return [], 0
    query = (
        select(INBOX.c.webhook_id, INBOX.c.company_id, INBOX.c.notices)
        .where(*waiting)
        .order_by(INBOX.c.received_at)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = session.execute(query).all()
    now = datetime.now(tz=UTC)
    taken = []
    for webhook_id, company_id, notices in rows:
        done = session.execute(
            update(INBOX)
            .where(INBOX.c.webhook_id == webhook_id, INBOX.c.processed_at.is_(None))
            .values(processed_at=now, asset_events=0)
        ).rowcount
        if done == 1:
            taken.append((webhook_id, company_id, notices_from_json(notices)))
    if not taken:
        return [], 0
    extra = portfolio_extra(taken)
    created = write_asset_events(session, [_Notice(PORTFOLIO_ASSET, extra)])
    log.info(
        "Codat webhooks: %d deliveries (%d companies) -> %d portfolio asset event(s)",
        len(taken),
        len(extra["companies"]),
        len(created),
    )
    return created, len(taken)
