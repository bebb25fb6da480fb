"""Read one incremental scope by *keyset* on ``modifiedDate``, so that records changing mid-read cannot be lost.

Offset paging (page 1, 2, 3 of one query ordered by ``modifiedDate``) loses records when the list moves under
it: a record re-stamped while the pages are read (by a sync, or by Codat re-stamping its cache without any
sync) jumps to the end of the order, every record behind it moves one place up, and one of them slides into a
page already read. No later run finds it, since its ``modifiedDate`` is below the new watermark.

So every request here is page 1 of ``modifiedDate>={the last instant read}``: where the next page starts is a
value, not an offset, and a record that moves can only move forward, ahead of the reader, where it is read.
The records at the boundary instant come back again and the version filter drops the ones already written.

When one instant fills a whole page (a bulk re-stamp gives thousands of records the same ``modifiedDate``),
the cursor cannot advance by value: that instant alone is read with offsets (``modifiedDate={instant}``), in
Codat's largest pages so that most such groups take one request, and read again until every record Codat counts
there has been seen (Codat documents no order among equal dates, so a pass over several pages can repeat some
records and skip others); then the read goes on past it (``modifiedDate>{instant}``).

The cost: the same number of calls as offset paging, plus one page re-read per instant that fills a page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any

from airflow_provider_codat.errors import CodatExtractError, CodatPagingError
from airflow_provider_codat.extract.plan import ReadScope, build_query
from airflow_provider_codat.extract.watermark import Cursor
from airflow_provider_codat.landing.records import instant_key, record_identity, record_instant
from airflow_provider_codat.safe_repr import shorten

if TYPE_CHECKING:
    from airflow_provider_codat.datatypes import DataType
    from airflow_provider_codat.hooks.codat import CodatHook
    from airflow_provider_codat.hooks.paging import Page
    from airflow_provider_codat.values import CompanyId

log = logging.getLogger(__name__)

MAX_INSTANT_PASSES = 10
INSTANT_PAGE_SIZE = 5000  # Codat's largest page: one request for most groups, and no order to trust within it


def iter_keyset_pages(
    hook: CodatHook,
    company_id: CompanyId,
    data_type: DataType,
    scope: ReadScope,
    start: Cursor,
    *,
    include_deleted: bool,
    page_size: int,
) -> Iterator[list[dict[str, Any]]]:
    """Yield every page of the scope's records with ``modifiedDate`` at or after ``start.watermark``.

    Pages can repeat records (at the instants where requests meet): the caller's version filter drops them.

    :param hook: the Codat hook.
    :param company_id: the checked company id.
    :param data_type: an incremental catalogue entry (passed to the hook as it is).
    :param scope: where the records are read from.
    :param start: where the read starts.
    :param include_deleted: keep records carrying ``metadata.isDeleted: true``.
    :param page_size: records per request.
    :raises CodatPagingError: when Codat answers out of ``modifiedDate`` order or before the cursor.
    :raises CodatExtractError: when one instant never reads the same twice in a row.
    """
    where = {"connection_id": scope.connection_id, "account_id": scope.account_id}
    cursor, op = start.watermark, ">="
    while True:
        query = build_query(data_type, cursor, include_deleted, op=op)
        page = hook.get_page(
            company_id,
            data_type,
            query=query,
            order_by="modifiedDate",
            page_size=page_size,
            **where,
        )
        first, last = _check_order(page, cursor, op, data_type.key)
        yield page
        if not page.has_next:
            return
        if last is None:
            raise CodatPagingError(
                f"A full page of {data_type.key} carries no modifiedDate, so the read cannot advance past it."
            )
        if first == last[0]:
            # One instant fills the page: read it whole by offsets, then go on past it.
            yield from _read_instant(hook, company_id, data_type, last[1], include_deleted, where)
            cursor, op = last[1], ">"
        else:
            cursor, op = last[1], ">="


def _check_order(
    page: list[dict[str, Any]], cursor: str | None, op: str, data_type: str
) -> tuple[str | None, tuple[str, str] | None]:
    """Check the page is in ``modifiedDate`` order and within the query; return its first key and last (key, raw)."""
    floor = instant_key(cursor) if cursor else None
    first = previous = None
    last_raw = None
    for record in page:
        raw = record.get("modifiedDate") if isinstance(record, dict) else None
        if raw is None:
            continue
        key = record_instant(record)
        if floor is not None and (key < floor or (op == ">" and key == floor)):
            raise CodatPagingError(
                f"Codat returned a {data_type} record modified at {shorten(raw)}, outside the query "
                f"modifiedDate{op}{shorten(cursor)}: stopping rather than trust the order of the pages."
            )
        if previous is not None and key < previous:
            raise CodatPagingError(
                f"Codat returned {data_type} records out of modifiedDate order ({shorten(raw)} after a later one): "
                "stopping, since the read relies on that order."
            )
        first = first or key
        previous, last_raw = key, raw
    return first, (previous, last_raw) if previous is not None else None


def _read_instant(
    hook: CodatHook,
    company_id: CompanyId,
    data_type: DataType,
    instant: str,
    include_deleted: bool,
    where: dict[str, Any],
) -> Iterator[list[dict[str, Any]]]:
    """Yield the pages of every record stamped exactly ``instant`` (see :func:`read_whole`)."""
    query = build_query(data_type, instant, include_deleted, op="=")
    key = instant_key(instant)

    def check(record: dict[str, Any]) -> None:
        if record.get("modifiedDate") is None or record_instant(record) != key:
            raise CodatPagingError(
                f"Codat returned a {data_type.key} record outside the query modifiedDate={shorten(instant)}."
            )

    pages = partial(
        hook.iter_pages,
        company_id,
        data_type,
        query=query,
        order_by="modifiedDate",
        page_size=INSTANT_PAGE_SIZE,
        **where,
    )
    yield from read_whole(
        pages, f"{data_type.key} records of company {company_id} stamped {shorten(instant)}", check
    )


def read_whole(
    pages: Callable[[], Iterable[Page]],
    what: str,
    check: Callable[[dict[str, Any]], None] | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """Yield the pages of an offset-paged list, reading it again until one read is known to be complete.

    Offset pages of records in no guaranteed order (equal ``modifiedDate`` values; types without one) can repeat
    some records and skip others. A read is complete when the count Codat reports stayed the same from its first
    page to its last and the distinct records seen (over every read) are at least that many: with the count
    unchanged, nothing joined or left the list, so what was seen is all of it. The caller drops repeats.

    :param pages: starts one read of the list.
    :param what: the list, for messages.
    :param check: called on every record (raise to refuse it).
    :raises CodatExtractError: when no read is complete after :data:`MAX_INSTANT_PASSES`.
    """
    seen: set[str] = set()
    for attempt in range(1, MAX_INSTANT_PASSES + 1):
        totals: list[int | None] = []
        for page in pages():
            totals.append(page.total)
            for record in page:
                if check is not None:
                    check(record)
                seen.add(record_identity(record))
            yield page
        stable = len(set(totals)) <= 1
        expected = totals[-1] if totals else 0
        if stable and (expected is None or len(seen) >= expected):
            return
        log.warning(
            "The %s did not read whole (read %d saw %d distinct of %s); reading them again",
            what,
            attempt,
            len(seen),
            "/".join(str(t) for t in totals),
        )
    raise CodatExtractError(
        f"The {what} could not be read whole in {MAX_INSTANT_PASSES} reads (Codat kept changing them or returned "
        "them in a shifting order); nothing was committed. Retry the extract later."
    )
