"""What the request budget does when its store does not answer: the call waits, backing off, within its own
deadline, and goes on when the store answers; past the deadline it fails with :class:`BudgetStoreError`, which
names the store (its URL without credentials) and what to check.

A store fault never fails a call in under :data:`MIN_WAIT` seconds, so that a caller that retries at once
(a sensor, a loop of calls) cannot turn an outage into a tight loop of failures.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import tenacity

from airflow_provider_codat.errors import CodatAPIError

log = logging.getLogger(__name__)

MIN_WAIT = 1.0  # seconds a call waits for its store at least before failing for its sake
NO_DEADLINE_WAIT = 300.0  # seconds a call with no deadline waits (the hook's default ``max_retry_time``)
BACKOFF = (0.1, 2.0)  # first and longest pause between looks at a store that does not answer

T = TypeVar("T")


class BudgetStoreError(CodatAPIError):
    """The request budget's store did not answer before the call's deadline: no request was sent.

    :param message: what happened and what to check.
    :param store: the store's URL, without credentials.
    """

    def __init__(self, message: str, *, store: str) -> None:
        super().__init__(message)
        self.store = store


def url_without_credentials(url: str) -> str:
    """``url`` without a user, a password or a query (which may carry one), e.g. ``redis://host:6379/1``."""
    parts = urlsplit(url)
    if not parts.netloc:  # a file (sqlite:///path) or memory: nothing secret but a query
        return url.split("?", 1)[0]
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class StoreWait:
    """Runs the store's operations of one budget, waiting out the store's faults.

    :param kind: what the store is, for people (``"Redis"``, ``"SQLite file"``).
    :param url: the store's URL (credentials are never shown).
    :param faults: the exceptions that mean the store does not answer (anything else is raised as it is).
    :param advice: what to check, ending the error's message.
    """

    def __init__(self, *, kind: str, url: str, faults: tuple[type[BaseException], ...], advice: str) -> None:
        self.kind = kind
        self.where = url_without_credentials(url)
        self.faults = faults
        self.advice = advice
        self._secret = urlsplit(url).password if "://" in url else None
        self._lock = threading.Lock()
        self._down_since: float | None = None  # when this process last found the store not answering

    def run(self, operation: Callable[[], T], deadline: float | None, *, doing: str) -> T:
        """``operation()``, tried again with growing pauses while it meets a store fault.

        :param deadline: epoch seconds: no waiting past it (but at least :data:`MIN_WAIT`); ``None``: wait up
            to :data:`NO_DEADLINE_WAIT`.
        :param doing: what the operation is for, in the error's message (e.g. ``"a token"``).
        :raises BudgetStoreError: the store still did not answer at the end of the wait.
        """
        started = time.time()
        end = max(started + MIN_WAIT, started + NO_DEADLINE_WAIT if deadline is None else deadline)
        backoff = tenacity.wait_exponential(multiplier=BACKOFF[0], max=BACKOFF[1]) + tenacity.wait_random(
            0, BACKOFF[0]
        )
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(self.faults),
            # The last look comes at the end of the wait, not a pause before it.
            wait=lambda state: max(0.0, min(backoff(state), end - time.time())),
            stop=tenacity.stop_after_delay(end - started),
            before_sleep=self._noted,
            reraise=True,
        )
        try:
            result = retrying(operation)
        except self.faults as exc:
            raise self._error(exc, time.time() - started, doing) from None
        self._answered()
        return result

    def once(self, operation: Callable[[], T], *, doing: str, default: Any = None) -> T | Any:
        """``operation()`` tried once, for what can do without the store (a lease that expires by itself, the
        quota another response reports again): a fault is logged and ``default`` returned."""
        try:
            result = operation()
        except self.faults as exc:
            log.warning(
                "Codat request budget: %s %s did not answer to %s (%s); carrying on without it.",
                self.kind,
                self.where,
                doing,
                self._text(exc),
            )
            return default
        self._answered()
        return result

    def _noted(self, state: tenacity.RetryCallState) -> None:
        with self._lock:
            if self._down_since is not None:
                return
            self._down_since = time.time()
        log.warning(
            "Codat request budget: %s %s does not answer (%s); requests wait for it, up to their deadline.",
            self.kind,
            self.where,
            self._text(state.outcome.exception()),
        )

    def _answered(self) -> None:
        if self._down_since is None:
            return
        with self._lock:
            since, self._down_since = self._down_since, None
        if since is not None:
            log.warning(
                "Codat request budget: %s %s answers again after %.1f s.",
                self.kind,
                self.where,
                time.time() - since,
            )

    def _text(self, exc: BaseException | None) -> str:
        text = f"{type(exc).__name__}: {exc}"
        if self._secret:
            text = text.replace(self._secret, "***")
        return text if len(text) <= 300 else f"{text[:300]}…"

    def _error(self, exc: BaseException, waited: float, doing: str) -> BudgetStoreError:
        return BudgetStoreError(
            f"The Codat request budget's store, {self.kind} {self.where}, did not answer for {waited:.0f} s "
            f"({self._text(exc)}); no request was sent: the call waited for {doing} until its deadline. Check "
            f"{self.advice}. The store is the Codat connection's extra `request_budget_store` or "
            "$CODAT_REQUEST_BUDGET_STORE.",
            store=self.where,
        )
