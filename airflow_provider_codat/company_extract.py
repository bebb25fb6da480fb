"""Extract several data types of one company at once, with one ``dataStatus`` read before and one after.

Each type is an ordinary :func:`~airflow_provider_codat.extract.core.run_extract` on a worker thread, so each
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
from typing import TYPE_CHECKING, Any

from airflow_provider_codat.extract.core import ExtractRequest, run_extract

if TYPE_CHECKING:
    from airflow_provider_codat.hooks.codat import CodatHook

log = logging.getLogger(__name__)

# Codat serves 10 concurrent requests per company. Each type being read has one request in flight at a time
# (its page prefetcher's), and the shared dataStatus reads happen when no type is reading.
DEFAULT_MAX_CONCURRENCY = 10
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
    :returns: per data type, ``{"status": "extracted", **summary}`` or ``{"status": "failed", "error": ...}``;
        and the number of ``dataStatus`` reads made.
    """
    if not requests:
        return {}
    company_ids = {request.company_id for request in requests}
    if len(company_ids) != 1:
        raise ValueError(f"extract_types takes one company's requests, got {len(company_ids)} companies.")
    company_id = requests[0].company_id
    workers = max(1, min(max_concurrency, len(requests)))
    # Resolve the connection and mask its secrets here, once, before the threads share the client: both talk
    # to Airflow's supervisor, whose channel takes one caller at a time on Airflow 3.1 (interleaved, they hang).
    _ = hook.client
    bracket = StatusBracket(lambda: hook.get_data_status(company_id), reading=workers, before=status_before)
    shared = _SharedListings(hook)

    def extract(index: int, request: ExtractRequest) -> dict[str, Any]:
        if index >= workers:
            bracket.join()
        calls = 0
        arrived = False

        def read_status() -> dict[str, dict]:
            nonlocal calls, arrived
            calls += 1
            if calls == 1:
                return bracket.before()
            if calls == 2:
                arrived = True
                return bracket.after()
            # A sync completed during this type's read: it reads again on its own, and so checks on its own.
            return hook.get_data_status(company_id)

        try:
            return {"status": "extracted", **run_extract(shared, request, read_status=read_status)}
        except Exception as exc:
            log.error("%s of company %s failed: %s", request.data_type.key, company_id, exc)
            return {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
        finally:
            if not arrived:
                bracket.leave()

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="codat-extract") as pool:
        futures = {
            request.data_type.key: pool.submit(extract, index, request)
            for index, request in enumerate(requests)
        }
        return {key: future.result() for key, future in futures.items()}


class _SharedListings:
    """The hook, with the company's connection list read once for every type that needs it."""

    def __init__(self, hook: CodatHook) -> None:
        self._hook = hook
        self._lock = threading.Lock()
        self._connections: dict[str, list[dict]] = {}

    def list_connections(self, company_id: str) -> list[dict]:
        with self._lock:
            if company_id not in self._connections:
                self._connections[company_id] = list(self._hook.list_connections(company_id))
            return self._connections[company_id]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._hook, name)
