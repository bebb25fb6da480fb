"""Retry policy for Codat requests: which failures are retried, how long to wait, when to give up.

Retried: 408, 429 and 5xx answers, and transport errors (connect errors and timeouts, read timeouts,
connections dropped without an answer). Never retried: other 4xx (400, 401, 402, 403, 404, 409 ...), which
would fail the same way again.

Waiting: ``Retry-After`` when the answer carries one (seconds or an HTTP date); otherwise exponential backoff as
Codat's own SDKs do it (0.5 s, x1.5 per attempt, capped at 60 s) with "equal jitter" (half the step fixed, half
random) so that many tasks hitting a limit together do not retry in lockstep.

Giving up: after ``max_retries`` retries, or when the next wait would take the request past ``max_retry_time``
seconds in total (a daily-quota 429 with a ``Retry-After`` of hours fails at once with a clear error instead of
holding a worker slot).
"""

from __future__ import annotations

import email.utils
import enum
import logging
import math
import random
import time
import traceback
from collections.abc import Callable
from datetime import UTC
from typing import Any

import httpx
import tenacity

log = logging.getLogger(__name__)

INITIAL_WAIT = 0.5
BACKOFF_FACTOR = 1.5
MAX_WAIT = 60.0

# Exceptions after which the server certainly did not process the request: nothing was sent.
UNSENT_ERRORS: tuple[type[Exception], ...] = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Exceptions worth another attempt (the request may or may not have reached the server).
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
)


class RetryPolicy(enum.Enum):
    """Which failures a request may be retried after.

    ``ALL``: any retryable failure. For reads (GET), and for ``data/queue`` (see the hook for why).
    ``UNSENT``: only failures after which the server certainly did nothing: a 429 (refused by the rate
    limiter before any work) and connection errors (nothing sent). For ``data/all``, whose retry after a lost
    answer could queue a second round of syncs.
    """

    ALL = "all"
    UNSENT = "unsent"


def is_retryable_status(status: int, policy: RetryPolicy = RetryPolicy.ALL) -> bool:
    if policy is RetryPolicy.UNSENT:
        return status == 429
    return status in (408, 429) or status >= 500


def is_retryable_exception(exc: BaseException, policy: RetryPolicy = RetryPolicy.ALL) -> bool:
    if policy is RetryPolicy.UNSENT:
        return isinstance(exc, UNSENT_ERRORS)
    return isinstance(exc, TRANSIENT_ERRORS)


def outcome_is_ambiguous(outcome: httpx.Response | BaseException) -> bool:
    """Whether an attempt may have been processed by Codat although it did not succeed (5xx, 408, a lost answer)."""
    if isinstance(outcome, BaseException):
        return not isinstance(outcome, UNSENT_ERRORS)
    return outcome.status_code == 408 or outcome.status_code >= 500


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date; ``None`` if absent/invalid.

    :param value: the header value.
    :param now: the current time (epoch seconds), for tests.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:
            # "-0000" gives a naive datetime; timestamp() would read it as this machine's local time.
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - (time.time() if now is None else now)
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


def backoff(attempt: int, rng: random.Random | None = None) -> float:
    """The wait before retry number ``attempt`` (1-based) when the server gave no ``Retry-After``.

    Between half and all of ``min(60, 0.5 * 1.5 ** (attempt - 1))`` seconds.
    """
    step = min(MAX_WAIT, INITIAL_WAIT * BACKOFF_FACTOR ** max(0, attempt - 1))
    return step / 2 + (rng or random).uniform(0, step / 2)


def _last_response(state: tenacity.RetryCallState) -> httpx.Response | None:
    outcome = state.outcome
    if outcome is None or outcome.failed:
        return None
    result = outcome.result()
    return result if isinstance(result, httpx.Response) else None


class _Wait(tenacity.wait.wait_base):
    def __init__(self, rng: random.Random | None) -> None:
        self.rng = rng

    def __call__(self, state: tenacity.RetryCallState) -> float:
        response = _last_response(state)
        if response is not None:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            if retry_after is not None:
                return retry_after
        return backoff(state.attempt_number, self.rng)


class _Stop(tenacity.stop.stop_base):
    def __init__(self, max_retries: int, max_retry_time: float, deadline: float | None = None) -> None:
        self.max_retries = max_retries
        self.max_retry_time = max_retry_time
        self.deadline = deadline

    def __call__(self, state: tenacity.RetryCallState) -> bool:
        if state.attempt_number > self.max_retries:
            return True
        upcoming = state.upcoming_sleep or 0.0
        if self.deadline is not None and time.time() + upcoming >= self.deadline:
            return True  # the caller's deadline comes first: no sleep past it
        spent = max(state.seconds_since_start or 0.0, state.idle_for)
        return spent + upcoming > self.max_retry_time


def _describe(state: tenacity.RetryCallState) -> str:
    outcome = state.outcome
    if outcome is not None and outcome.failed:
        return type(outcome.exception()).__name__
    response = _last_response(state)
    return f"HTTP {response.status_code}" if response is not None else "?"


def _before_sleep(method: str, path: str, max_retries: int) -> Callable[[tenacity.RetryCallState], None]:
    def before_sleep(state: tenacity.RetryCallState) -> None:
        response = _last_response(state)
        hint = ""
        if response is not None and response.headers.get("retry-after") is not None:
            hint = " (Retry-After)"
        log.warning(
            "Codat %s %s failed with %s; retry %s/%s in %.2f s%s",
            method,
            path,
            _describe(state),
            state.attempt_number,
            max_retries,
            state.upcoming_sleep,
            hint,
        )

    return before_sleep


def retrying(
    method: str,
    path: str,
    *,
    policy: RetryPolicy,
    max_retries: int,
    max_retry_time: float,
    sleep: Callable[[float], Any],
    rng: random.Random | None = None,
    asynchronous: bool = False,
    deadline: float | None = None,
) -> tenacity.BaseRetrying:
    """A tenacity ``Retrying`` for one request (``sleep`` is injectable so tests never really sleep).

    With ``asynchronous`` it is an ``AsyncRetrying`` instead, and ``sleep`` an async function. With a
    ``deadline`` (epoch seconds) it gives up rather than wait past it.
    """

    def should_retry(state: tenacity.RetryCallState) -> bool:
        outcome = state.outcome
        if outcome is None:
            return False
        if outcome.failed:
            return is_retryable_exception(outcome.exception(), policy)
        response = _last_response(state)
        return response is not None and is_retryable_status(response.status_code, policy)

    loop_class = tenacity.AsyncRetrying if asynchronous else tenacity.Retrying
    return loop_class(
        sleep=sleep,
        retry=should_retry,
        wait=_Wait(rng),
        stop=_Stop(max_retries, max_retry_time, deadline),
        before_sleep=_before_sleep(method, path, max_retries),
        # On giving up: hand back the last response (turned into a CodatAPIError by the caller) or re-raise the
        # last transport error.
        retry_error_callback=lambda state: state.outcome.result(),
    )


def release(loop: tenacity.BaseRetrying, outcomes: list, raised: BaseException | None = None) -> None:
    """Break the reference cycles a finished retry loop leaves, so that its responses die by reference counting.

    Without this each response (up to ~1 MB of page body) lives until the cyclic garbage collector runs:

    - tenacity keeps the last iteration's actions, bound methods of the loop itself, in the loop's state;
    - an attempt's exception holds a traceback whose frames (tenacity's loop, the attempt, and through ``f_back``
      every caller) hold the final response and the list of outcomes, which holds the exception.

    :param loop: the finished ``Retrying``/``AsyncRetrying``.
    :param outcomes: each attempt's response or exception.
    :param raised: the exception the loop raised, if any: its traceback is kept, for the error's report, but its
        finished frames lose their locals (tenacity's frame holds the exception again).
    """
    state = getattr(loop, "iter_state", None)  # tenacity >= 8.4
    if state is not None:
        state.reset()
    for outcome in outcomes:
        if outcome is raised:
            traceback.clear_frames(outcome.__traceback__)  # skips the frames still running (the caller's)
        elif isinstance(outcome, BaseException):
            _drop_tracebacks(outcome)  # a retried failure: nothing will report it


def _drop_tracebacks(exc: BaseException) -> None:
    """Drop the tracebacks of ``exc`` and of the exceptions it chains (httpx's wraps httpcore's, and so on)."""
    pending, seen = [exc], set()
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        current.__traceback__ = None
        pending += [current.__cause__, current.__context__]
