"""Fold the company tasks' health reports (XCom ``codat_health``) into the health tables, on the API server.

The page's data call folds what arrived since the last fold (at most every :data:`FOLD_EVERY_SECONDS` per
process, at most :data:`BATCH` reports at a time), so a page view reads only the small health tables. Several
API server processes may fold at once: each fold moves the watermark with a compare-and-set in its own
transaction, so a report is counted once.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, insert, select, update

from airflow_provider_codat.health.record import (
    apply_report,
    get_meta,
    instant,
    prune,
    set_meta,
    summarise_all,
)
from airflow_provider_codat.health.report import REPORT_KEY
from airflow_provider_codat.health.schema import META, TABLES

log = logging.getLogger(__name__)

WATERMARK = "xcom_watermark"
SUMMARY_VERSION = "company_summary_v2"  # set once every company's list rows were built from its type rows
FOLD_EVERY_SECONDS = 10.0
BATCH = 500

_lock = threading.Lock()
_folded_at: float | None = None
_summarised = False


def _xcom_table() -> Any:
    from airflow.models.xcom import XComModel

    return XComModel.__table__


def report_value(value: Any) -> dict[str, Any] | None:
    """The report an XCom row holds (Airflow keeps the value as serialized JSON, sometimes twice)."""
    for _ in range(3):
        if not isinstance(value, str | bytes):
            break
        value = json.loads(value)
    return value if isinstance(value, dict) and value.get("companies") is not None else None


def fold_reports(engine: Any, *, limit: int = BATCH) -> int:
    """Fold up to ``limit`` reports newer than the watermark; the number folded (0 when another process won).

    :param engine: Airflow's metadata database engine, the health tables ensured on it.
    """
    xcom = _xcom_table()
    with engine.begin() as connection:
        mark = get_meta(connection, WATERMARK)
        since, seen = _parse_mark(mark)
        query = select(
            xcom.c.dag_run_id, xcom.c.task_id, xcom.c.map_index, xcom.c.timestamp, xcom.c.value
        ).where(xcom.c.key == REPORT_KEY)
        if since is not None:
            query = query.where(xcom.c.timestamp >= since)
        rows = connection.execute(query.order_by(xcom.c.timestamp).limit(limit + len(seen))).all()
        fresh = [r for r in rows if _row_key(r) not in seen][:limit]
        if not fresh:
            return 0
        last = instant(fresh[-1].timestamp)
        at_last = [_row_key(r) for r in fresh if instant(r.timestamp) == last]
        if last == since:
            at_last = sorted(seen | set(at_last))
        new_mark = json.dumps({"at": last.isoformat(), "seen": at_last})
        if not _move_mark(connection, mark, new_mark):
            return 0
        for row in fresh:
            report = report_value(row.value)
            if report is not None:
                apply_report(connection, report, at=instant(row.timestamp))
        prune(connection, now=datetime.now(tz=UTC))
    return len(fresh)


def fold_if_due(*, now: float | None = None) -> None:
    """Fold new reports unless this process folded less than :data:`FOLD_EVERY_SECONDS` ago.

    A failed fold is logged and leaves the page showing what was folded before.
    """
    global _folded_at
    moment = time.monotonic() if now is None else now
    with _lock:
        if _folded_at is not None and moment - _folded_at < FOLD_EVERY_SECONDS:
            return
        _folded_at = moment
    try:
        engine = TABLES.engine()
        ensure_summaries(engine)
        while fold_reports(engine) == BATCH:
            pass
    except Exception:
        log.warning("Could not fold the Codat health reports", exc_info=True)


def ensure_summaries(engine: Any) -> None:
    """Build the list's rows once for a record kept before they existed (then the fold keeps them)."""
    global _summarised
    if _summarised:
        return
    with engine.begin() as connection:
        if get_meta(connection, SUMMARY_VERSION) is None:
            summarise_all(connection)
            set_meta(connection, SUMMARY_VERSION, "1")
    _summarised = True


def _row_key(row: Any) -> str:
    return f"{row.dag_run_id}/{row.task_id}/{row.map_index}"


def _parse_mark(mark: str | None) -> tuple[datetime | None, set[str]]:
    if not mark:
        return None, set()
    parsed = json.loads(mark)
    return instant(parsed["at"]), set(parsed.get("seen") or ())


def _move_mark(connection: Any, old: str | None, new: str) -> bool:
    """Compare-and-set the watermark: ``False`` when another process moved it first."""
    if old is None:
        before = connection.execute(select(META.c.value).where(META.c.name == WATERMARK)).scalar()
        if before is not None:
            return False
        # Plain insert: of two first folds racing, the second's fails on the key and rolls back.
        connection.execute(insert(META).values(name=WATERMARK, value=new))
        return True
    moved = connection.execute(
        update(META).where(and_(META.c.name == WATERMARK, META.c.value == old)).values(value=new)
    )
    return moved.rowcount == 1
