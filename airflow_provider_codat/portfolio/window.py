"""One window of the portfolio path, as plain functions: what changed, read it, merge it, note it.

A window is one run of ``codat_portfolio_changes``: every ``codat://portfolio-changes`` event since the previous
run (``portfolio/route.py``), each standing for up to a thousand deliveries. Its work:

1. :func:`window_changes`: per company, the data types to read (changed), the connections Codat read them from,
   and the marks to note (every type Codat said it read, with its ``generatedDate``); split into batches of
   companies (:func:`company_batches`).
2. :func:`extract_companies`, one task per batch: each company's changed types read concurrently (within
   Codat's 10 requests in flight per company), incremental from the landing's watermark, pages of 5,000, with
   no refresh and no ``dataStatus`` call (Codat's webhook already says the sync completed), and a
   connection-scoped type read from the connection the webhook named (no listing of the company's connections;
   bank transactions still list the connection's bank accounts). Every company's run folder is named from the
   window's run id.
3. :func:`finish_window`: one Delta merge per data type for every company of the window (``tables/batch.py``,
   one commit per type, not one per event), then the window's marks (``portfolio/marks.py``).

A company whose read fails gets no mark for that type, so the next sweep reads it; the window still merges and
notes the others.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_codat.datatypes import Scope, get_data_type
from airflow_provider_codat.errors import CodatValidationError
from airflow_provider_codat.extract.concurrent_types import DEFAULT_MAX_CONCURRENCY, extract_types
from airflow_provider_codat.extract.request import ExtractRequest
from airflow_provider_codat.landing.destination import destination_path
from airflow_provider_codat.portfolio.marks import add_marks, write_window_marks
from airflow_provider_codat.portfolio.route import PORTFOLIO_KIND
from airflow_provider_codat.tables.batch import merge_types
from airflow_provider_codat.values import CompanyId, ConnectionId
from airflow_provider_codat.webhooks.events import EVENT_SOURCE

if TYPE_CHECKING:
    from airflow_provider_codat.hooks.codat import CodatHook

log = logging.getLogger(__name__)

PAGE_SIZE = 5000  # Codat's largest page: one request per changed type for all but the busiest companies
DEFAULT_BATCH = 50  # companies per extract task


def window_changes(extras: Iterable[Mapping[str, Any]], data_types: Sequence[str]) -> list[dict[str, Any]]:
    """Per company (sorted), ``{"company_id", "changed": [types to read], "heard": {type: generatedDate}}``
    from the events' extras, limited to ``data_types``; events from elsewhere and bad entries are left out.

    :param extras: the extras of the run's triggering ``codat://portfolio-changes`` events.
    :param data_types: the catalogue keys this deployment lands.
    """
    wanted = {get_data_type(key).key for key in data_types}
    companies: dict[str, dict[str, Any]] = {}
    for extra in extras:
        if not isinstance(extra, Mapping) or extra.get("source") != EVENT_SOURCE:
            continue
        if extra.get("kind") != PORTFOLIO_KIND or not isinstance(extra.get("companies"), Mapping):
            continue
        for raw_id, entry in extra["companies"].items():
            try:
                company_id = str(CompanyId.parse(raw_id))
            except CodatValidationError:
                log.warning("Skipping a portfolio change without a valid company id")
                continue
            if not isinstance(entry, Mapping):
                continue
            found = companies.setdefault(
                company_id, {"company_id": company_id, "changed": [], "heard": {}, "connections": {}}
            )
            for data_type, connections in (entry.get("connections") or {}).items():
                if data_type in wanted and isinstance(connections, list):
                    known = found["connections"].setdefault(data_type, [])
                    known.extend(c for c in connections if isinstance(c, str) and c not in known)
            for data_type in entry.get("changed") or []:
                if data_type in wanted and data_type not in found["changed"]:
                    found["changed"].append(data_type)
            heard = {
                k: v for k, v in (entry.get("heard") or {}).items() if k in wanted and isinstance(v, str)
            }
            add_marks({company_id: found["heard"]}, {company_id: heard})
    for found in companies.values():
        found["changed"].sort()
    return [companies[key] for key in sorted(companies)]


def company_batches(changes: Sequence[Mapping[str, Any]], size: int = DEFAULT_BATCH) -> list[list[dict]]:
    """``changes`` in batches of ``size`` companies (one extract task each)."""
    if size < 1:
        raise CodatValidationError(f"The batch size must be at least 1, got {size}.")
    return [list(changes[i : i + size]) for i in range(0, len(changes), size)]


def read_connection(data_type: str, connections: Mapping[str, Sequence[str]] | None) -> str | None:
    """The one connection a connection-scoped type is read from, when the webhook named exactly one (the
    company's connections then need no listing); ``None``: read every connection of its source type."""
    if get_data_type(data_type).scope is Scope.COMPANY:
        return None
    named = list((connections or {}).get(data_type) or [])
    if len(named) != 1:
        return None
    try:
        return str(ConnectionId.parse(named[0]))
    except CodatValidationError:
        return None


def read_company_types(
    hook: CodatHook,
    company_id: CompanyId,
    data_types: Sequence[str],
    *,
    connections: Mapping[str, Any] | None,
    destination: Any,
    run_id: str,
    page_size: int,
    max_concurrency: int,
) -> dict[str, dict[str, Any]]:
    """Read one company's types from their watermarks, concurrently, with no refresh and no ``dataStatus``
    (a webhook or ``lastSync`` already said Codat synced them).

    :param data_types: the types' keys.
    :param connections: per type the connection ids a webhook or the listing named (connection-scoped types).
    :param destination: the landing's path.
    :returns: per type what its extract returned (``status``, ``records``, ``error``).
    """
    requests = [
        ExtractRequest.for_run(
            company_id=company_id,
            data_type=get_data_type(key),
            destination=destination,
            run_id=run_id,
            page_size=page_size,
            known_synced=True,
            connection_id=read_connection(key, connections),
        )
        for key in data_types
    ]
    return extract_types(hook, requests, max_concurrency=max_concurrency) if requests else {}


def extract_companies(
    hook: CodatHook,
    batch: Sequence[Mapping[str, Any]],
    *,
    destination: str,
    run_id: str,
    page_size: int = PAGE_SIZE,
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
) -> dict[str, Any]:
    """Read each company's changed types (one company at a time, its types concurrently).

    :returns: ``{"landed": {company: [types]}, "failed": {company: {type: reason}}, "marks": {company: {type:
        instant}}, "records": n}``: marks for the types read without error and those Codat read with nothing
        changed.
    """
    path = destination_path(destination)
    landed: dict[str, list[str]] = {}
    failed: dict[str, dict[str, str]] = {}
    marks: dict[str, dict[str, str]] = {}
    records = 0
    for entry in batch:
        company_id = CompanyId.parse(entry["company_id"])
        results = read_company_types(
            hook,
            company_id,
            entry.get("changed") or [],
            connections=entry.get("connections"),
            destination=path,
            run_id=run_id,
            page_size=page_size,
            max_concurrency=max_concurrency,
        )
        ok = [key for key, result in results.items() if result.get("status") == "extracted"]
        bad = {key: str(result.get("error")) for key, result in results.items() if key not in ok}
        records += sum(int(results[key].get("records") or 0) for key in ok)
        if ok:
            landed[str(company_id)] = sorted(ok)
        if bad:
            failed[str(company_id)] = bad
        heard = {key: when for key, when in (entry.get("heard") or {}).items() if key not in bad}
        if heard:
            marks[str(company_id)] = heard
    log.info(
        "Window %s: %d companies read, %d types landed, %d records, %d companies with a failed type",
        run_id,
        len(batch),
        sum(len(types) for types in landed.values()),
        records,
        len(failed),
    )
    return {"landed": landed, "failed": failed, "marks": marks, "records": records}


def finish_window(
    results: Iterable[Mapping[str, Any] | None],
    *,
    destination: str,
    run_id: str,
    tables: bool = True,
) -> dict[str, Any]:
    """Merge every company's landed types into the tables, one commit per type, and note the window's marks.

    :param results: what each :func:`extract_companies` task returned (``None`` for a task that failed).
    :returns: ``{"merged": {type: result}, "failures": [...], "companies": n, "failed": {company: {...}}}``.
    """
    landed: dict[str, set[str]] = {}
    marks: dict[str, dict[str, str]] = {}
    failed: dict[str, dict[str, str]] = {}
    for result in results:
        if not result:
            continue
        for company, types in (result.get("landed") or {}).items():
            for data_type in types:
                landed.setdefault(data_type, set()).add(company)
        add_marks(marks, result.get("marks") or {})
        failed.update(result.get("failed") or {})
    merged: dict[str, Any] = {}
    failures: list[str] = []
    if tables and landed:
        companies = sorted({c for cs in landed.values() for c in cs})
        merged, failures = merge_types(
            data_types=sorted(landed), destination=destination, company_ids=companies, run_id=run_id
        )
    # A merge that failed fails the task (the caller), whose retry merges the same run again (merges are
    # idempotent per run): the landing holds the data either way, so the marks stand.
    write_window_marks(destination, run_id, marks)
    return {
        "merged": merged,
        "failures": failures,
        "companies": len({c for cs in landed.values() for c in cs}),
        "failed": failed,
    }
