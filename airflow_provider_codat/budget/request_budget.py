"""One request budget per Codat client, spent by every request of every process that shares its store.

Before each request (each attempt, retries included) the hook asks :class:`RequestBudget` for

* a token of the per-minute rate: at most ``requests_per_minute`` in any 60 seconds, counted over a log of
  recent requests (``pyrate-limiter``), with a second rate over 5 seconds on top so that a minute's requests are
  spread over it instead of leaving in one burst when a window opens;
* a place among the company's requests in flight (a lease, see :mod:`.stores`);
* leave from the daily quota: nothing is sent once Codat said none is left, and no new read or refresh starts
  once it is down to the reserve (reads under way and waits may use the reserve).

Waiting for a token or a place is not an error: it costs time, as it would at Codat's door, and ends at the
call's deadline (then it is a ``PoolTimeout``: nothing was sent).

When the store does not answer (Redis down or failing over, a SQLite file locked or on a full disk) a call
waits for it, backing off, up to its deadline, then fails with a ``BudgetStoreError`` naming the store
(:mod:`.outage`). Leases and the quota do without the store for a moment: a lease expires by itself, and the
last quota seen is kept.

A store that comes back empty (a restarted Redis, a promoted replica, a removed SQLite file) has forgotten the
last minute's requests. The rule: **after a store is found empty, no process takes a token for one 5-second
slice**. The moment is kept in the store itself (the first process to find it empty writes it, atomically with
its token), so every process of the store keeps the same pause, however many there are and whether or not they
had noticed the loss. Why that holds Codat's limit: the old store let at most one slice's worth (``S``,
1/12 of the minute's rate) out in any 5 seconds, so a 60-second window that spans the loss holds, before it,
at most ``ceil(a / 5) * S`` requests (``a`` seconds of it before the loss); after it, nothing for 5 seconds and
then at most one slice per 5 seconds: ``ceil((55 - a) / 5) * S``. Together at most ``12 * S``: the minute's
rate (rounded up to whole slices, 900 stays 900). A brand-new store is not told apart from an emptied one: it
costs one 5-second pause the first time.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import math
import random
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from pyrate_limiter import Limiter, Rate
from pyrate_limiter.limiter import SingleBucketFactory

from airflow_provider_codat.budget.quota import Quota
from airflow_provider_codat.budget.settings import BudgetSettings
from airflow_provider_codat.budget.stores import open_store
from airflow_provider_codat.budget.usage import count_request
from airflow_provider_codat.errors import CodatQuotaExhaustedError

log = logging.getLogger(__name__)

MINUTE_SECONDS = (
    60  # Codat's window; tests of the store's faults shorten it (with the slice) in their processes
)
SMOOTHING_SECONDS = 5
LEAK_EVERY = 1000  # tokens between clean-ups of the request log (its count query reads only the last minute)
QUOTA_READ_EVERY = 1.0  # seconds a process trusts its last look at the shared quota
LEASE_MARGIN = 60.0  # seconds a lease outlives its request's timeout (then a killed process's place frees)
LEASE_POLL = (0.02, 0.2)  # seconds between looks for a free place

# Token waits of the async twins run here: a waiting request then holds one of these two threads, not one of
# the event loop's default executor, which the triggerer needs for its own work.
_WAITERS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="codat-budget")


def rates_for(requests_per_minute: int) -> list[Rate]:
    """The minute's rate, and the same pace over 5 seconds (rounded up) so that it is spread over the minute."""
    per_slice = max(1, math.ceil(requests_per_minute * SMOOTHING_SECONDS / MINUTE_SECONDS))
    return [
        Rate(per_slice, int(SMOOTHING_SECONDS * 1000)),
        Rate(requests_per_minute, int(MINUTE_SECONDS * 1000)),
    ]


_NEVER = object()


def quota_refusal(
    quota: Quota, remaining: int, *, method: str, path: str, sent: bool
) -> CodatQuotaExhaustedError:
    """The error for a request the daily quota cannot pay for: refused by the budget before it was sent
    (``sent=False``), or by Codat (a 429 saying none is left)."""
    what = (
        "is used up (X-Rate-Limit-Remaining: 0)"
        if remaining <= 0
        else f"is down to {remaining} requests, the reserve kept for waits and reads under way"
    )
    fate = "Codat refused" if sent else "no request was sent:"
    return CodatQuotaExhaustedError(
        f"Codat's daily request quota {what} until {_when(quota.resets_at)}; {fate} {method} {path}. A task "
        "of this provider pauses until the reset and then carries on.",
        resets_at=quota.resets_at,
        method=method,
        path=path,
    )


def _when(epoch: float | None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch)) if epoch else "its reset (time unknown)"


class RequestBudget:
    """The budget of one Codat client, as kept in one store.

    :param settings: the rates, the store and the reserve.
    """

    def __init__(self, settings: BudgetSettings) -> None:
        self.settings = settings
        self.store = open_store(settings.store, settings.key)
        self._bucket: Any = None
        self._limiter: Limiter | None = None
        self._generation = 0  # the store's generation the bucket was built for
        self._tokens = 0
        self._lock = threading.Lock()
        self._in_flight = 0  # this process's requests sent and not yet answered
        self._quota: tuple[float, Quota | None] = (-math.inf, None)
        self._written: Quota | None = None
        self._warned_for: object = _NEVER  # the reset (day) the nearly-spent warning was given for

    # -- the per-minute rate ---------------------------------------------------------------------------------
    def take_token(self, deadline: float | None = None) -> None:
        """Wait for a token of the per-minute rate.

        :param deadline: epoch seconds; no waiting past it.
        :raises httpx.PoolTimeout: no token before ``deadline`` (nothing was sent).
        :raises BudgetStoreError: the store did not answer before ``deadline`` (nothing was sent).
        """
        self.store.wait.run(
            lambda: self._take_token(deadline), deadline, doing="a token of the per-minute rate"
        )
        self._tokens += 1
        count_request()  # requests per minute, for the health page (budget.usage)
        if self._tokens % LEAK_EVERY == 0:
            bucket = self._bucket
            self.store.wait.once(lambda: bucket.leak(bucket.now()), doing="clean its request log")

    def _take_token(self, deadline: float | None) -> None:
        try:
            # Looked at first: a SQLite file found removed is opened anew here, and the limiter built for it.
            found_empty = self.store.found_empty_at()  # a store whose bucket does not wait this out itself
            limiter = self._current_limiter()
            if found_empty is not None:
                _sleep_until(found_empty + SMOOTHING_SECONDS, deadline)
            timeout = -1 if deadline is None else max(0.0, deadline - time.time())
            taken = limiter.try_acquire(self.settings.key, blocking=True, timeout=timeout)
        except self.store.wait.faults:
            self.store.discard()
            raise
        if not taken:
            raise httpx.PoolTimeout("No token of the Codat request budget before the call's deadline.")

    def _current_limiter(self) -> Limiter:
        """The limiter over the store's bucket, built (again) for the store's current generation."""
        with self._lock:
            generation = self.store.generation
            if self._limiter is None or generation != self._generation:
                bucket = self.store.bucket(rates_for(self.settings.requests_per_minute))
                if self._limiter is not None:
                    with contextlib.suppress(Exception):
                        self._limiter.close()
                # No leak thread: this process cleans the log itself every LEAK_EVERY tokens.
                self._bucket = bucket
                self._limiter = Limiter(SingleBucketFactory(bucket, schedule_leak=False))
                self._generation = self.store.generation
            return self._limiter

    async def atake_token(self, deadline: float | None = None) -> None:
        """Async twin of :meth:`take_token` (the wait runs off the event loop)."""
        # In the caller's context: a trigger counting its requests apart (budget.usage) counts this one too.
        context = contextvars.copy_context()
        await asyncio.get_running_loop().run_in_executor(_WAITERS, context.run, self.take_token, deadline)

    # -- requests in flight per company ----------------------------------------------------------------------
    @contextlib.contextmanager
    def company_place(self, company: str | None, ttl: float, deadline: float | None = None) -> Iterator[None]:
        """Hold one of ``company``'s places in flight for the duration (none for calls of no company); the
        request counts among this process's requests in flight either way."""
        if company is None:
            with self._counted():
                yield
            return
        holder = None
        while holder is None:
            holder = self._try_place(company, ttl, deadline)
            if holder is None:
                time.sleep(random.uniform(*LEASE_POLL))
        try:
            with self._counted():
                yield
        finally:
            self._drop(company, holder)

    @contextlib.asynccontextmanager
    async def acompany_place(
        self, company: str | None, ttl: float, deadline: float | None = None
    ) -> AsyncIterator[None]:
        """Async twin of :meth:`company_place`."""
        if company is None:
            with self._counted():
                yield
            return
        loop = asyncio.get_running_loop()
        holder = None
        while holder is None:
            holder = await loop.run_in_executor(_WAITERS, self._try_place, company, ttl, deadline)
            if holder is None:
                await asyncio.sleep(random.uniform(*LEASE_POLL))
        try:
            with self._counted():
                yield
        finally:
            await loop.run_in_executor(_WAITERS, self._drop, company, holder)

    @contextlib.contextmanager
    def _counted(self) -> Iterator[None]:
        """Count a request in flight in this process: the quota Codat last reported has not seen it yet."""
        with self._lock:
            self._in_flight += 1
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1

    def _try_place(self, company: str, ttl: float, deadline: float | None) -> str | None:
        if deadline is not None and time.time() >= deadline:
            raise httpx.PoolTimeout(
                f"No free place among company {company}'s requests before the call's deadline."
            )
        return self.store.wait.run(
            lambda: self.store.take_lease(company, self.settings.concurrent_per_company, ttl + LEASE_MARGIN),
            deadline,
            doing=f"a place among company {company}'s requests in flight",
        )

    def _drop(self, company: str, holder: str) -> None:
        # A lease the store cannot drop now expires by itself.
        self.store.wait.once(lambda: self.store.drop_lease(company, holder), doing="free a place")

    # -- the daily quota -------------------------------------------------------------------------------------
    def quota(self) -> Quota | None:
        """The daily quota as last reported to any process of the store, while it is current."""
        now = time.time()
        looked, quota = self._quota
        if now - looked >= QUOTA_READ_EVERY:
            # A store that does not answer: the last look stands (the token's wait covers the outage).
            quota = self.store.wait.once(self.store.read_quota, doing="read the daily quota", default=quota)
            self._quota = (now, quota)
        return quota if quota is not None and quota.current(now) else None

    def check_quota(self, *, starts_work: bool, method: str, path: str) -> None:
        """Refuse a request the daily quota cannot pay for; nothing is sent.

        :param starts_work: the request starts a read or a refresh (not a wait's poll or a read's next page).
        :raises CodatQuotaExhaustedError: none left, or (for ``starts_work``) no more than the reserve left.
        """
        quota = self.quota()
        if quota is None:
            return
        reserve = self.settings.reserve_for(quota.limit)
        # What Codat last reported, less what this process has sent since and not heard back about.
        remaining = quota.remaining - self._in_flight
        if remaining > 0 and (not starts_work or remaining > reserve):
            return
        raise quota_refusal(quota, remaining, method=method, path=path, sent=False)

    def note(self, quota: Quota) -> None:
        """Keep the quota a response reported, for every process of the store (written at most once a second
        unless it nears the reserve or a new day begins)."""
        now = quota.observed_at
        self._quota = (now, quota)
        log.debug("Codat daily quota: %s of %s requests remaining", quota.remaining, quota.limit or "?")
        reserve = self.settings.reserve_for(quota.limit)
        last = self._written
        if (
            last is None
            or last.resets_at != quota.resets_at
            or quota.remaining > last.remaining  # renewed: every process may start again
            or quota.remaining <= 2 * reserve
            or now - last.observed_at >= QUOTA_READ_EVERY
        ):
            self.store.wait.once(lambda: self.store.write_quota(quota), doing="keep the daily quota")
            self._written = quota
        if quota.remaining <= 2 * reserve and self._warned_for != quota.resets_at:
            self._warned_for = quota.resets_at
            log.warning(
                "Codat's daily request quota is nearly spent: %s of %s left until %s; new reads stop at %s.",
                quota.remaining,
                quota.limit if quota.limit else "?",
                _when(quota.resets_at),
                reserve,
            )

    def close(self) -> None:
        if self._limiter is not None:
            self._limiter.close()
        self.store.close()


def _sleep_until(moment: float, deadline: float | None) -> None:
    """Sleep until ``moment``; a ``PoolTimeout`` at once when that is past ``deadline``."""
    pause = moment - time.time()
    if pause <= 0:
        return
    if deadline is not None and moment > deadline:
        raise httpx.PoolTimeout(
            "No token of the Codat request budget before the call's deadline (store found empty)."
        )
    time.sleep(pause)


_BUDGETS: dict[Any, RequestBudget] = {}


def budget_for(settings: BudgetSettings) -> RequestBudget:
    """This process's :class:`RequestBudget` for ``settings`` (one per settings and process: a forked worker
    opens its own connections to the store)."""
    import os

    key = (os.getpid(), settings)
    budget = _BUDGETS.get(key)
    if budget is None:
        budget = _BUDGETS[key] = RequestBudget(settings)
    return budget
