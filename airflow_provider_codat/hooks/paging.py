"""Walk Codat's paged lists page by page, following the envelope, and refuse a loop that does not advance.

Envelope: ``{results, pageNumber, pageSize, totalResults, _links: {self, current, next?, previous?}}``.
``_links.next`` is absent on the last page. Only one page is held at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from airflow_provider_codat.errors import CodatPagingError

log = logging.getLogger(__name__)

# 1000 records a page: ten times fewer calls (and less of the daily quota) than Codat's default of 100, while
# staying well clear of 5000-record pages, which Codat documents as answering more slowly and which hold five
# times the memory per page. An incremental run of a busy company reads a few pages; a first full read of
# 50,000 invoices is 50 calls instead of 500.
DEFAULT_PAGE_SIZE = 1000


def iter_envelopes(
    fetch: Callable[[dict[str, Any]], Any],
    path: str,
    params: dict[str, Any],
    page_size: int,
) -> Iterator[list[dict[str, Any]]]:
    """Yield the ``results`` of each page, from page 1 until the last page or an empty one.

    :param fetch: sends one GET for ``path`` with the given query parameters, returns the decoded body.
    :param path: the list's path (for messages).
    :param params: query parameters other than ``page``/``pageSize``.
    :param page_size: records per page.
    :raises CodatPagingError: when the server answers a page other than the one asked for, links to a page
        that is not after the current one, or serves the same records twice in a row.
    """
    page = 1
    previous_ids: tuple | None = None
    while True:
        body = fetch({**params, "page": page, "pageSize": page_size})
        if not isinstance(body, dict) or not isinstance(body.get("results", []), list):
            raise CodatPagingError(f"Codat answered page {page} of {path} without a results list.")
        results = body.get("results") or []
        number = body.get("pageNumber")
        if isinstance(number, int) and not isinstance(number, bool) and number != page:
            raise CodatPagingError(
                f"Asked Codat for page {page} of {path} and got page {number}: the list does not advance, "
                "stopping instead of reading the same records again."
            )
        if not results:
            return
        ids = _ids(results)
        if ids is not None and ids == previous_ids:
            raise CodatPagingError(
                f"Codat served the same {len(results)} records for pages {page - 1} and {page} of {path}: the "
                "list does not advance, stopping instead of looping."
            )
        yield results
        following = _next_page(body, page, len(results), page_size)
        if following is None:
            return
        if following <= page:
            raise CodatPagingError(
                f"Page {page} of {path} links to page {following} as the next one: the list does not advance, "
                "stopping instead of looping."
            )
        log.debug("Codat %s: page %s read (%s records), next page %s", path, page, len(results), following)
        page, previous_ids = following, ids


def _next_page(body: dict[str, Any], page: int, count: int, page_size: int) -> int | None:
    links = body.get("_links")
    if isinstance(links, dict):
        nxt = links.get("next")
        if not nxt:
            return None
        href = nxt.get("href") if isinstance(nxt, dict) else None
        if isinstance(href, str):
            value = httpx.URL(href).params.get("page")
            if value is not None:
                try:
                    return int(value)
                except ValueError:
                    pass
        return page + 1
    total = body.get("totalResults")
    size = body.get("pageSize") if isinstance(body.get("pageSize"), int) else page_size
    if isinstance(total, int) and not isinstance(total, bool):
        return page + 1 if page * size < total else None
    return page + 1 if count >= size else None


def _ids(results: list[Any]) -> tuple | None:
    ids = tuple(r.get("id") for r in results if isinstance(r, dict))
    if len(ids) != len(results) or any(i is None for i in ids):
        return None
    return ids
