"""Codat's paged envelope: ``results``, ``pageNumber``, ``pageSize``, ``totalResults`` and relative links."""

from __future__ import annotations

import random
from itertools import groupby
from urllib.parse import urlencode

from airflow_provider_codat.simulator.error_bodies import SimulatorError

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 5000


def parse_paging(page: str | None, page_size: str | None) -> tuple[int, int]:
    """Validate ``page`` (from 1) and ``pageSize`` (1..5000) as Codat does, answering 400 otherwise.

    :param page: the ``page`` parameter.
    :param page_size: the ``pageSize`` parameter.
    """
    try:
        number = int(page) if page not in (None, "") else 1
        size = int(page_size) if page_size not in (None, "") else DEFAULT_PAGE_SIZE
    except ValueError:
        raise SimulatorError(400, "page and pageSize must be integers.") from None
    if number < 1:
        raise SimulatorError(400, "page must be 1 or more.")
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise SimulatorError(400, f"pageSize must be between 1 and {MAX_PAGE_SIZE}.")
    return number, size


def envelope(
    path: str, records: list[dict], page: int, page_size: int, query: str | None, order_by: str | None
) -> dict:
    """One page of ``records`` (already filtered and sorted) with Codat's links.

    :param path: the request path; links are relative to the host, like Codat's.
    :param records: the filtered, sorted records.
    :param page: page number, from 1.
    :param page_size: records per page.
    :param query: the query, repeated in the links.
    :param order_by: the order, repeated in the links.
    """
    total = len(records)
    start = (page - 1) * page_size
    extra = {key: value for key, value in (("query", query), ("orderBy", order_by)) if value}

    def href(number: int) -> dict:
        return {"href": f"{path}?{urlencode({'page': number, 'pageSize': page_size, **extra})}"}

    links = {"self": {"href": path}, "current": href(page)}
    if start + page_size < total:
        links["next"] = href(page + 1)
    if page > 1:
        links["previous"] = href(page - 1)
    return {
        "results": records[start : start + page_size],
        "pageNumber": page,
        "pageSize": page_size,
        "totalResults": total,
        "_links": links,
    }


def shuffle_ties(records: list[dict], rng: random.Random) -> list[dict]:
    """The same records with every run of equal ``modifiedDate`` values in a new order: Codat documents no
    tiebreak, so two requests may order such records differently.

    :param records: records sorted by ``modifiedDate``.
    :param rng: where the new order comes from.
    """
    out: list[dict] = []
    for _, group in groupby(records, key=lambda record: record.get("modifiedDate")):
        tied = list(group)
        rng.shuffle(tied)
        out.extend(tied)
    return out
