"""Walk Codat's paged lists page by page, trusting nothing the envelope says without checking it.

Envelope: ``{results, pageNumber, pageSize, totalResults, _links: {self, current, next?, previous?}}``.
``_links.next`` is absent on the last page. Only one page is held at a time.

A list that ends early is data lost without a sound, so every way an envelope can lie is an error, never a
silent end: a body without a ``results`` list, a page other than the one asked for, a ``next`` link that skips
or goes back, the same records served again (a cycle of any length), a short page that links to another, and
a last page that leaves fewer records than ``totalResults`` announced.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Generator, Iterator
from typing import Any

import httpx

from airflow_provider_codat.errors import CodatPagingError, CodatValidationError

log = logging.getLogger(__name__)

# 1000 records a page: ten times fewer calls (and less of the daily quota) than Codat's default of 100, while
# staying well clear of 5000-record pages, which Codat documents as answering more slowly and which hold five
# times the memory per page. An incremental run of a busy company reads a few pages; a first full read of
# 50,000 invoices is 50 calls instead of 500.
DEFAULT_PAGE_SIZE = 1000


class Page(list):
    """The records of one page (a plain list to callers), with what the envelope said about the whole list.

    :param results: the page's records.
    :param number: the page number (from 1).
    :param total: ``totalResults`` (records matching the query over all pages), ``None`` when absent.
    :param has_next: whether another page follows.
    """

    __slots__ = ("__weakref__", "has_next", "number", "total")

    def __init__(self, results: list[Any], number: int, total: int | None, has_next: bool) -> None:
        super().__init__(results)
        self.number = number
        self.total = total
        self.has_next = has_next


def check_envelope(body: Any, page: int, page_size: int, path: str) -> Page:
    """Turn one decoded page body into a :class:`Page`, or raise if the envelope contradicts itself.

    :param body: the decoded JSON body.
    :param page: the page number asked for.
    :param page_size: the page size asked for.
    :param path: the list's path (for messages).
    :raises CodatPagingError: on a body without a ``results`` list, a page other than the one asked for, a
        ``next`` link to any page but the following one, or a short page that still links to another.
    """
    if not isinstance(body, dict) or not isinstance(body.get("results"), list):
        raise CodatPagingError(
            f"Codat answered page {page} of {path} without a results list, so the list cannot be read to its "
            "end; nothing was committed. Retry later; if it persists, check the connection's base URL."
        )
    results = body["results"]
    number = body.get("pageNumber")
    if _is_int(number) and number != page:
        raise CodatPagingError(
            f"Asked Codat for page {page} of {path} and got page {number}: stopping rather than skip or repeat "
            "records."
        )
    total = body.get("totalResults") if _is_int(body.get("totalResults")) else None
    size = body.get("pageSize") if _is_int(body.get("pageSize")) and body["pageSize"] > 0 else page_size
    following = _next_page(body, page, len(results), size, total)
    if following is not None and following != page + 1:
        raise CodatPagingError(
            f"Page {page} of {path} links to page {following} as the next one instead of page {page + 1}: "
            "stopping rather than skip or repeat records."
        )
    has_next = following is not None and bool(results)
    if has_next and len(results) < size:
        raise CodatPagingError(
            f"Page {page} of {path} holds {len(results)} records, fewer than the page size {size}, yet links to "
            "another page: the list is inconsistent, stopping rather than miss records."
        )
    if not has_next and total is not None and total > (page - 1) * size + len(results):
        raise CodatPagingError(
            f"Codat reported {total} records for {path} but its last page (page {page}) ends at record "
            f"{(page - 1) * size + len(results)}: stopping rather than end the list early."
        )
    return Page(results, page, total, has_next)


def iter_envelopes(
    fetch: Callable[[dict[str, Any]], Any],
    path: str,
    params: dict[str, Any],
    page_size: int,
) -> Generator[Page, None, None]:
    """Yield each page, from page 1 until the last page, checking each envelope (:func:`check_envelope`).

    :param fetch: sends one GET for ``path`` with the given query parameters, returns the decoded body.
    :param path: the list's path (for messages).
    :param params: query parameters other than ``page``/``pageSize``.
    :param page_size: records per page.
    :raises CodatPagingError: when an envelope lies (see :func:`check_envelope`) or a page repeats the records
        of an earlier page (a cycle of any length).
    """
    page = 1
    seen: dict[bytes, int] = {}
    while True:
        current = check_envelope(
            fetch({**params, "page": page, "pageSize": page_size}), page, page_size, path
        )
        if not current:
            return
        digest = _digest(current)
        if digest is not None:
            if digest in seen:
                raise CodatPagingError(
                    f"Codat served the same {len(current)} records for pages {seen[digest]} and {page} of {path}: "
                    "the list cycles, stopping instead of reading the same records again."
                )
            seen[digest] = page
        yield current
        if not current.has_next:
            return
        log.debug("Codat %s: page %s read (%s records)", path, page, len(current))
        page += 1


class PagedRead(Iterator[Page]):
    """The pages of one list read whose arguments are checked already: iterate it for every page in turn
    (:func:`iter_envelopes`, nothing is sent before the first ``next``), or :meth:`read` one page.

    :param fetch: sends one GET for ``path`` with the given query parameters, returns the decoded body.
    :param path: the list's path.
    :param params: query parameters other than ``page``/``pageSize``.
    :param page_size: records per page.
    """

    def __init__(
        self, fetch: Callable[[dict[str, Any]], Any], path: str, params: dict[str, Any], page_size: int
    ) -> None:
        self.fetch, self.path, self.params, self.page_size = fetch, path, params, page_size
        self._pages: Generator[Page, None, None] | None = None

    def __next__(self) -> Page:
        return next(self._started())

    def close(self) -> None:
        """Stop reading: no further request is sent."""
        self._started().close()

    def _started(self) -> Generator[Page, None, None]:
        if self._pages is None:
            self._pages = iter_envelopes(self.fetch, self.path, self.params, self.page_size)
        return self._pages

    def read(self, page: int) -> Page:
        """Read one page, its envelope checked (:func:`check_envelope`); the iteration does not move.

        :param page: the page number, from 1.
        """
        if not isinstance(page, int) or isinstance(page, bool) or page < 1:
            raise CodatValidationError("page must be a whole number from 1.")
        body = self.fetch({**self.params, "page": page, "pageSize": self.page_size})
        return check_envelope(body, page, self.page_size, self.path)


def _next_page(body: dict[str, Any], page: int, count: int, size: int, total: int | None) -> int | None:
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
                    raise CodatPagingError(
                        f"Page {page} links to a next page that is not a number; stopping."
                    ) from None
        return page + 1
    if total is not None:
        return page + 1 if page * size < total else None
    return page + 1 if count >= size else None


def _digest(results: list[Any]) -> bytes | None:
    """A fingerprint of a page's record ids (``None`` when some record has no id)."""
    ids = [r.get("id") if isinstance(r, dict) else None for r in results]
    if any(i is None for i in ids):
        return None
    return hashlib.blake2b("\x1f".join(map(str, ids)).encode(), digest_size=16).digest()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
