"""The daily sweep of the portfolio path: find the companies whose webhooks were missed, and read only those.

Webhooks are not a ledger: Codat gives up on a message after about 28 hours, and a receiver down longer loses
it. The sweep finds those syncs without polling every company:

1. ``GET /companies`` in pages of 5,000: each company's ``lastSync`` (20 requests for 100,000 companies).
2. A company is *suspect* when a data type the deployment lands has no mark, its ``lastSync`` is later than
   every mark (``portfolio/marks.py``: Codat synced it after the last thing we heard), or its marks are
   further apart than one sync round (one type's message of a later round was lost). On a day with every
   delivery received, no company is suspect and the sweep costs the listing alone. (That ``lastSync`` moves
   with every completed sync is the simulator's reading of Codat's "last synchronized"; should it move for
   other types too, those companies cost one ``dataStatus`` and no read.)
3. Per suspect company, every type is read from the landing's watermark (the same exactly-once extract: what
   the webhook path landed is never read again, only what came after it), from the connections the listing
   names, with no ``dataStatus`` and no refresh; then merged with the day's other catch-ups, one commit per
   type, and the company's marks set to its ``lastSync``.

A missed day of a company therefore costs at most the requests of a normal day with every type changed (one
read per type and scope, the bank accounts' listing), and is landed by the next sweep (within a day).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_codat.datatypes import Scope, get_data_type
from airflow_provider_codat.extract.concurrent_types import DEFAULT_MAX_CONCURRENCY
from airflow_provider_codat.landing.destination import destination_path
from airflow_provider_codat.landing.records import instant_key
from airflow_provider_codat.portfolio.window import PAGE_SIZE, read_company_types
from airflow_provider_codat.values import CompanyId

if TYPE_CHECKING:
    from airflow_provider_codat.hooks.codat import CodatHook

log = logging.getLogger(__name__)

_NOT_SYNCED = "CodatDataNotSyncedError"
# A company's daily types complete within minutes of each other; a type heard of a day apart missed a message.
DEFAULT_SPREAD = timedelta(hours=1)


def _key(value: Any) -> str:
    try:
        return instant_key(value) if isinstance(value, str) and value else ""
    except Exception:
        return ""


def suspect_companies(
    companies: Sequence[Mapping[str, Any]],
    marks: Mapping[str, Mapping[str, str]],
    data_types: Sequence[str],
    *,
    spread: timedelta = DEFAULT_SPREAD,
) -> list[dict[str, str]]:
    """``{"company_id", "last_sync", "connections"}`` of the companies the sweep must read: a type without a mark, a
    ``lastSync`` later than every mark (Codat synced after the last thing we heard), or marks further apart
    than ``spread`` (one type was heard of on a later sync than another: the other's message was lost).

    :param companies: as ``GET /companies`` lists them (``id``, ``lastSync``).
    :param marks: ``{company: {type: instant}}``.
    :param data_types: the catalogue keys the deployment lands (synced on one schedule).
    :param spread: how far apart one sync round's types may complete.
    """
    keys = [get_data_type(key).key for key in data_types]
    suspects = []
    for company in companies:
        company_id = str(company.get("id") or "").lower()
        last_sync = _moment(company.get("lastSync"))
        if not company_id or last_sync is None:
            continue  # never synced: nothing to read
        known = marks.get(company_id) or {}
        moments = [_moment(known.get(key)) for key in keys]
        if (
            any(moment is None for moment in moments)
            or last_sync > max(moments)
            or max(moments) - min(moments) > spread
        ):
            suspects.append(
                {
                    "company_id": company_id,
                    "last_sync": str(company["lastSync"]),
                    "connections": company_connections(company, keys),
                }
            )
    return suspects


def _moment(value: Any) -> datetime | None:
    """An instant Codat wrote, as an aware datetime (microseconds; ``None`` when absent or unreadable)."""
    key = _key(value)
    if not key:
        return None
    return datetime.fromisoformat(key[:26]).replace(tzinfo=UTC)


def company_connections(company: Mapping[str, Any], data_types: Sequence[str]) -> dict[str, list[str]]:
    """Per connection-scoped type, the company's connections it is read from (as ``GET /companies`` lists them
    in ``dataConnections``): those of the type's source type that ever authorised (not ``PendingAuth``)."""
    found: dict[str, list[str]] = {}
    for key in data_types:
        entry = get_data_type(key)
        if entry.scope is Scope.COMPANY:
            continue
        found[entry.key] = sorted(
            str(conn.get("id"))
            for conn in company.get("dataConnections") or []
            if str(conn.get("sourceType") or "").lower() == entry.source_type.lower()
            and conn.get("status") != "PendingAuth"
            and conn.get("id")
        )
    return found


def sweep_companies(
    hook: CodatHook,
    companies: Sequence[Mapping[str, Any]],
    data_types: Sequence[str],
    *,
    destination: str,
    run_id: str,
    page_size: int = PAGE_SIZE,
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
) -> dict[str, Any]:
    """Per suspect company, read every type from its watermark: exactly the requests of a day whose webhooks
    all arrived with every type changed, and no ``dataStatus`` (so a lost day never costs more than a normal
    one). A type Codat never synced for the company (``409``) has nothing to read.

    :param companies: ``{"company_id", "last_sync", "connections"}`` per suspect company
        (:func:`suspect_companies`).
    :returns: like :func:`~airflow_provider_codat.portfolio.window.extract_companies` (``landed``, ``failed``,
        ``marks``: every type read or never synced, through the company's ``lastSync``; ``records``), plus
        ``caught_up``: per company the types in which something new landed.
    """
    keys = [get_data_type(key).key for key in data_types]
    path = destination_path(destination)
    landed: dict[str, list[str]] = {}
    caught_up: dict[str, list[str]] = {}
    failed: dict[str, dict[str, str]] = {}
    marks: dict[str, dict[str, str]] = {}
    records = 0
    for company in companies:
        company_id = CompanyId.parse(company["company_id"])
        results = read_company_types(
            hook,
            company_id,
            keys,
            connections=company.get("connections"),
            destination=path,
            run_id=run_id,
            page_size=page_size,
            max_concurrency=max_concurrency,
        )
        ok = [key for key, result in results.items() if result.get("status") == "extracted"]
        never = [key for key, result in results.items() if str(result.get("error")).startswith(_NOT_SYNCED)]
        bad = {key: str(r.get("error")) for key, r in results.items() if key not in ok and key not in never}
        records += sum(int(results[key].get("records") or 0) for key in ok)
        if ok:
            landed[str(company_id)] = sorted(ok)
        new = sorted(key for key in ok if results[key].get("records"))
        if new:
            caught_up[str(company_id)] = new
        if bad:
            failed[str(company_id)] = bad
        if company.get("last_sync"):
            marks[str(company_id)] = {key: str(company["last_sync"]) for key in keys if key not in bad}
    log.info(
        "Sweep %s: %d suspect companies, %d with something new (%d types), %d records",
        run_id,
        len(companies),
        len(caught_up),
        sum(len(types) for types in caught_up.values()),
        records,
    )
    return {"landed": landed, "failed": failed, "marks": marks, "records": records, "caught_up": caught_up}
