"""Injected faults: what can go wrong between a client and Codat, switchable at run time."""

from __future__ import annotations

import re
import threading
from dataclasses import asdict, dataclass, field

from airflow_provider_codat.simulator.echo import BODY_FORMATS, ECHOES

KINDS = (
    "rate_limit",
    "server_error",
    "latency",
    "drop",
    "write_during_paging",
    "echo_auth",
    # Paging that lies or moves (issue: nothing lost, nothing leaked).
    "restamp_during_paging",  # re-stamp records already served, with no sync (dataStatus does not move)
    "unstable_order",  # records sharing a modifiedDate come in a different order at every request
    "link_skip",  # the next link of page `after_page` skips a page
    "link_cycle",  # the next link of page `after_page` points back to page 1
    "empty_object",  # 200 with `{}` instead of an envelope
)
# Faults that strike one page of a list: after it is served, or in its links.
PAGE_KINDS = ("write_during_paging", "restamp_during_paging", "link_skip", "link_cycle")
SERVER_ERROR_STATUSES = (500, 502, 503, 504)


@dataclass
class Fault:
    """One fault rule.

    :param kind: ``rate_limit``, ``server_error``, ``latency``, ``drop``, ``write_during_paging`` or
        ``echo_auth`` (an error whose body repeats the request's ``Authorization`` header).
    :param path: regex searched in the request path; ``None`` matches every Codat path.
    :param method: HTTP method to match; ``None`` matches any.
    :param times: how many matching requests it affects; ``None`` for every one.
    :param status: for ``server_error``: 500, 502, 503 or 504 (502-504 answer with an HTML body).
    :param retry_after: for ``rate_limit``: the ``Retry-After`` value (seconds, or an HTTP date string).
    :param delay: for ``latency``: seconds added before answering.
    :param after_page: for ``write_during_paging`` and ``restamp_during_paging``: the page after which the
        records change; for ``link_skip`` and ``link_cycle``: the page whose next link lies.
    :param count: for ``restamp_during_paging``: how many records already served are re-stamped.
    :param body_format: for ``echo_auth``: ``json`` or ``html``.
    :param echo: for ``echo_auth``: how the header is repeated (see :func:`~.echo.echoed`).
    """

    kind: str
    path: str | None = None
    method: str | None = None
    times: int | None = 1
    status: int | None = None
    retry_after: float | str | None = None
    delay: float | None = None
    after_page: int = 1
    count: int = 2
    body_format: str = "json"
    echo: str = "header"
    id: int = 0
    hits: int = 0
    _pattern: re.Pattern | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Unknown fault kind {self.kind!r}; use one of {', '.join(KINDS)}.")
        if self.kind == "server_error":
            self.status = self.status or 500
            if self.status not in SERVER_ERROR_STATUSES:
                raise ValueError(f"server_error status must be one of {SERVER_ERROR_STATUSES}.")
        if self.kind == "rate_limit" and self.retry_after is None:
            self.retry_after = 1
        if self.kind == "echo_auth":
            self.status = self.status or 403
            if not 400 <= self.status <= 599:
                raise ValueError("echo_auth status must be an error status (400 to 599).")
            if self.body_format not in BODY_FORMATS or self.echo not in ECHOES:
                raise ValueError(f"echo_auth takes body_format in {BODY_FORMATS} and echo in {ECHOES}.")
        if self.kind == "latency" and self.delay is None:
            self.delay = 1.0
        self._pattern = re.compile(self.path) if self.path else None

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method.upper() != method.upper():
            return False
        return self._pattern is None or self._pattern.search(path) is not None

    def as_json(self) -> dict:
        body = asdict(self)
        body.pop("_pattern")
        return body


class Faults:
    """The active fault rules; thread-safe, since tests add faults while the server answers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._next_id = 1

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            fault.id = self._next_id
            self._next_id += 1
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def list(self) -> list[dict]:
        with self._lock:
            return [fault.as_json() for fault in self._faults]

    def take(self, method: str, path: str, kinds: tuple[str, ...], page: int | None = None) -> Fault | None:
        """Consume one use of the first fault of ``kinds`` matching this request, if any.

        :param method: HTTP method.
        :param path: request path.
        :param kinds: fault kinds to consider.
        :param page: the ``page`` parameter.
        """
        with self._lock:
            for fault in self._faults:
                if fault.kind not in kinds or not fault.matches(method, path):
                    continue
                if fault.kind in PAGE_KINDS and page != fault.after_page:
                    continue
                fault.hits += 1
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                return fault
        return None
