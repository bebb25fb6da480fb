"""Extract several data types of one company at once, with one ``dataStatus`` read before and one after.

Each type is an ordinary :func:`~airflow_provider_codat.extract.run.run_extract` on a worker thread, so each
commits on its own and one type's failure touches no other. What the types share is ``dataStatus``: the extract
reads it before its pages (has the type ever synced?) and after them (did a sync complete meanwhile, shifting
the pages?). Read per type, that is two calls per type; here one read serves every type before, and one read
made once every type in flight has read its pages serves them all after (:class:`StatusBracket`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING, Any

from airflow_provider_codat.errors import CodatQuotaExhaustedError
from airflow_provider_codat.extract.request import ExtractRequest
from airflow_provider_codat.extract.run import run_extract

if TYPE_CHECKING:
    from airflow_provider_codat.hooks.codat import CodatHook
    from airflow_provider_codat.values import CompanyId

log = logging.getLogger(__name__)

# Codat serves 10 concurrent requests per company. Each type being read has one request in flight at a time
# (its page prefetcher's), and the shared dataStatus reads happen when no type is reading.
DEFAULT_MAX_CONCURRENCY = 10
# The status of a type not read because Codat's daily quota could not pay for it (not a failure of the type).
QUOTA_PAUSED = "quota_paused"
_UNSET: Any = object()


class StatusBracket:
    """One ``dataStatus`` read before the types' reads, and one after them, shared by every type.

    ``after()`` blocks until no other type is still reading its pages, then one caller reads for all the
    callers waiting. Types waiting for a worker thread do not count (they have not started): with more types
    than workers, each wave of types shares its own read after, and nothing waits for a type that cannot
    start.

    :param read: reads ``dataStatus`` of the company.
    :param reading: how many types are registered as reading from the start (those that get a worker at once).
    :param before: ``dataStatus`` as the caller last saw it (the wait's final look), instead of a read.
    """

    def __init__(
        self, read: Callable[[], dict[str, dict]], reading: int = 0, before: dict[str, dict] | None = None
    ) -> None:
        self._read = read
        self._before_lock = threading.Lock()
        self._before: Any = _UNSET if before is None else before
        self._cond = threading.Condition()
        self._reading = reading
        self._generation = 0
        self._after: dict[int, Any] = {}

    def before(self) -> dict[str, dict]:
        """``dataStatus`` before the reads: read by the first caller, shared by the others."""
        with self._before_lock:
            if self._before is _UNSET:
                self._before = self._read()
            return self._before

    def join(self) -> None:
        """A type starts reading (one that was not registered up front)."""
        with self._cond:
            self._reading += 1

    def leave(self) -> None:
        """A type stops without asking for the status after (it failed, or had nothing to read)."""
        with self._cond:
            self._reading -= 1
            self._cond.notify_all()

    def after(self) -> dict[str, dict]:
        """``dataStatus`` read once every type in flight has read its pages."""
        with self._cond:
            self._reading -= 1
            generation = self._generation
            self._cond.notify_all()
            self._cond.wait_for(
                lambda: generation in self._after or (self._reading == 0 and self._generation == generation)
            )
            if generation not in self._after:
                self._generation += 1  # this caller reads for its generation; later arrivals form the next
                reader = True
            else:
                reader = False
        if reader:
            try:
                outcome: Any = self._read()
            except Exception as exc:  # every caller of the generation gets the same failure
                outcome = exc
            with self._cond:
                self._after[generation] = outcome
                self._cond.notify_all()
        result = self._after[generation]
        if isinstance(result, Exception):
            raise result
        return result


def extract_types(
    hook: CodatHook,
    requests: list[ExtractRequest],
    *,
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
    status_before: dict[str, dict] | None = None,
) -> dict[str, dict[str, Any]]:
    """Extract every request (one company, one data type each) concurrently; each commits on its own.

    :param hook: the Codat hook (its client is shared by the threads).
    :param requests: one per data type, all of the same company.
    :param max_concurrency: how many types are read at once.
    :param status_before: the ``dataStatus`` entries of the types as the wait last saw them; read when ``None``.
        An entry older than the real state is safe: a sync completing meanwhile only costs one more pass.
    :returns: per data type, ``{"status": "extracted", **summary}`` or ``{"status": "failed", "error": ...}``.
    """
    if not requests:
        return {}
    company_id = _the_company(requests)
    workers = max(1, min(max_concurrency, len(requests)))
    # Resolve the connection and mask its secrets here, once, before the threads share the client: both talk
    # to Airflow's supervisor, whose channel takes one caller at a time on Airflow 3.1 (interleaved, they hang).
    _ = hook.client
    bracket = StatusBracket(lambda: hook.get_data_status(company_id), reading=workers, before=status_before)
    extract = partial(_extract_one, SharedListings(hook), bracket, workers)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="codat-extract") as pool:
        futures = {
            request.data_type.key: pool.submit(extract, index, request)
            for index, request in enumerate(requests)
        }
        return {key: future.result() for key, future in futures.items()}


def _the_company(requests: list[ExtractRequest]) -> CompanyId:
    """The one company of ``requests``; ``ValueError`` when they name several."""
    company_ids = {request.company_id for request in requests}
    if len(company_ids) != 1:
        raise ValueError(f"extract_types takes one company's requests, got {len(company_ids)} companies.")
    return requests[0].company_id


def _extract_one(
    hook: SharedListings, bracket: StatusBracket, workers: int, index: int, request: ExtractRequest
) -> dict[str, Any]:
    """One type's extract on a worker thread; its failure is its result, and touches no other type."""
    if index >= workers:
        bracket.join()
    read_status = _BracketedStatus(hook, bracket, request.company_id)
    try:
        return {"status": "extracted", **run_extract(hook, request, read_status=read_status)}
    except CodatQuotaExhaustedError as exc:  # not this type's failure: the caller pauses for the reset
        return {"status": QUOTA_PAUSED, "error": exc.message, "resets_at": exc.resets_at}
    except Exception as exc:
        log.error("%s of company %s failed: %s", request.data_type.key, request.company_id, exc)
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    finally:
        if not read_status.arrived:
            bracket.leave()


class _BracketedStatus:
    """One type's ``read_status``: the shared read before its pass, the shared read after it, its own after that.

    :param hook: reads ``dataStatus`` when the type reads again on its own.
    :param bracket: the reads shared by the company's types.
    :param company_id: the company.
    """

    def __init__(self, hook: SharedListings, bracket: StatusBracket, company_id: CompanyId) -> None:
        self._hook = hook
        self._bracket = bracket
        self._company_id = company_id
        self._calls = 0
        self.arrived = (
            False  # the type asked for the shared read after (so the bracket no longer waits for it)
        )

    def __call__(self) -> dict[str, dict]:
        self._calls += 1
        if self._calls == 1:
            return self._bracket.before()
        if self._calls == 2:
            self.arrived = True
            return self._bracket.after()
        # A sync completed during this type's read: it reads again on its own, and so checks on its own.
        return self._hook.get_data_status(self._company_id)


class SharedListings:
    """The hook, with the company's connection list read once for every type that needs it."""

    def __init__(self, hook: CodatHook) -> None:
        self._hook = hook
        self._lock = threading.Lock()
        self._connections: dict[str, list[dict]] = {}

    def list_connections(self, company_id: CompanyId) -> list[dict]:
        with self._lock:
            if company_id not in self._connections:
                self._connections[company_id] = list(self._hook.list_connections(company_id))
            return self._connections[company_id]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._hook, name)
