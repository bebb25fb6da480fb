"""Codat's three rate limits, enforced: requests per minute per IP, a daily quota per client (per API key) and
concurrent requests per company.

What counts (Codat's rate-limits page): the per-minute limit is on the traffic an IP sends, so every request
that arrives counts against its window, the ones answered 429 included; a client that keeps sending while
limited stays limited. The daily quota counts the calls Codat serves ("it is not possible to make API calls
that exceed the quota"): a request refused by any of the three limits does not use it, nor does a 401 (no
client to charge) or an injected fault (it stands in for a failure in front of Codat). A refused request is not
in flight. All three run on the simulator's clock (real time unless a test moved it), in epoch seconds.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta

WINDOW_SECONDS = 60.0
CODAT_REQUESTS_PER_MINUTE = 1000
CODAT_CONCURRENT_PER_COMPANY = 10
# Codat's daily quota: this many requests, times (1 + active connected companies).
CODAT_DAILY_REQUESTS_PER_COMPANY = 1000
LIMIT_NAMES = ("minute", "daily", "concurrent")


@dataclass(frozen=True)
class LimitSettings:
    """The limits in force.

    :param requests_per_minute: requests per client IP in any 60-second window; ``None`` or 0: unlimited.
    :param daily_quota: requests per quota period for the client; ``None``: Codat's
        ``1000 × (1 + active connected companies)``, worked out when each period starts.
    :param quota_period_seconds: ``None``: the quota resets at 00:00 UTC; a number: every that many seconds
        from when the state was made (a reset a test or bench can wait for).
    :param concurrent_per_company: requests in flight at once for one company; ``None`` or 0: unlimited.
    """

    requests_per_minute: int | None = CODAT_REQUESTS_PER_MINUTE
    daily_quota: int | None = None
    quota_period_seconds: float | None = None
    concurrent_per_company: int | None = CODAT_CONCURRENT_PER_COMPANY

    def __post_init__(self) -> None:
        for name in ("requests_per_minute", "daily_quota", "concurrent_per_company"):
            object.__setattr__(self, name, _whole(name, getattr(self, name), minimum=0))
        if self.daily_quota == 0:
            raise ValueError(
                "daily_quota must be a positive number of requests, or None for Codat's default."
            )
        period = self.quota_period_seconds
        if period is not None:
            try:
                period = float(period)
            except (TypeError, ValueError):
                raise ValueError(f"quota_period_seconds must be seconds or None, got {period!r}.") from None
            if not period > 0 or math.isinf(period):
                raise ValueError(f"quota_period_seconds must be > 0 (or None for 00:00 UTC), got {period!r}.")
            object.__setattr__(self, "quota_period_seconds", period)

    def as_json(self) -> dict:
        return asdict(self)


def _whole(name: str, value, minimum: int) -> int | None:
    """``value`` as an int (the control API's query string gives text), or ``None``."""
    if value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a whole number or None, got {value!r}.") from None
    if number < minimum or (isinstance(value, float) and number != value):
        raise ValueError(f"{name} must be a whole number >= {minimum} or None, got {value!r}.")
    return number


def iso_utc(epoch: float) -> str:
    """``X-Rate-Limit-Reset``'s form, rounded up to the whole second so it is never early."""
    return datetime.fromtimestamp(math.ceil(epoch), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def busiest_window(arrivals: Iterable[float], seconds: float = WINDOW_SECONDS) -> int:
    """The most arrivals in any window of ``seconds`` (a half-open ``(t - seconds, t]``), in one pass.

    :param arrivals: arrival times in epoch seconds, in any order.
    :param seconds: the window's length.
    """
    ordered = sorted(arrivals)
    busiest = start = 0
    for end, moment in enumerate(ordered):
        while ordered[start] <= moment - seconds:
            start += 1
        busiest = max(busiest, end - start + 1)
    return busiest


class RateLimits:
    """The counters behind the limits, for one :class:`~.world.SimulatorState` (its own lock: cheap to take on
    every request while a test changes the limits from another thread).

    :param settings: the limits.
    :param active_companies: counts the active connected companies (for Codat's default quota).
    :param now: the moment the state was made, epoch seconds (the origin of ``quota_period_seconds``).
    """

    def __init__(self, settings: LimitSettings, active_companies: Callable[[], int], now: float) -> None:
        self.settings = settings
        self._active_companies = active_companies
        self._lock = threading.Lock()
        self._origin = math.floor(now)
        self._windows: dict[str, deque[float]] = {}
        self._period: tuple[float, float] | None = None  # (start, end) of the quota period
        self._reset = ""  # X-Rate-Limit-Reset of the period, formatted once
        self._quota = 0
        self._used = 0
        self._in_flight: dict[str, int] = {}
        self.peak_in_flight: dict[str, int] = {}

    def configure(self, now: float, **changes) -> LimitSettings:
        """Change some limits now. A new ``quota_period_seconds`` starts a fresh period (nothing used) now; a new
        ``daily_quota`` applies to the current period, keeping what it used.

        :param now: the moment, epoch seconds.
        :param changes: :class:`LimitSettings` fields.
        """
        with self._lock:
            updated = replace(self.settings, **changes)
            if "quota_period_seconds" in changes:
                self._origin, self._period = math.floor(now), None
            elif self._period is not None:
                self._quota = updated.daily_quota or self._codat_quota()
            if updated.requests_per_minute is None or updated.requests_per_minute == 0:
                self._windows.clear()
            self.settings = updated
            return updated

    # -- per minute, per IP ------------------------------------------------------------------------
    def arrive(self, client: str, now: float) -> int | None:
        """Count an arrival from ``client``; the ``Retry-After`` seconds if its window is full, else ``None``.

        :param client: the client's IP address.
        :param now: the arrival, epoch seconds.
        """
        limit = self.settings.requests_per_minute
        if not limit:
            return None
        with self._lock:
            window = self._windows.setdefault(client, deque())
            while window and window[0] <= now - WINDOW_SECONDS:
                window.popleft()
            window.append(now)
            excess = len(window) - limit
            if excess <= 0:
                return None
            # This refused arrival counts too: a request is let in again once all but limit - 1 of the
            # arrivals now in the window have left it.
            return max(1, math.ceil(window[excess] + WINDOW_SECONDS - now))

    # -- concurrent, per company -------------------------------------------------------------------
    def enter(self, company_id: str) -> bool:
        """Admit one more request in flight for the company; ``False`` if it already has its limit."""
        limit = self.settings.concurrent_per_company
        with self._lock:
            count = self._in_flight.get(company_id, 0) + 1
            if limit and count > limit:
                return False
            self._in_flight[company_id] = count
            if count > self.peak_in_flight.get(company_id, 0):
                self.peak_in_flight[company_id] = count
            return True

    def leave(self, company_id: str) -> None:
        """The company's request is answered (or gave up)."""
        with self._lock:
            count = self._in_flight.pop(company_id, 0) - 1
            if count > 0:
                self._in_flight[company_id] = count

    def in_flight(self) -> dict[str, int]:
        with self._lock:
            return dict(self._in_flight)

    # -- the daily quota ---------------------------------------------------------------------------
    def spend(self, now: float) -> tuple[int | None, list[tuple[bytes, bytes]]]:
        """Use one request of the quota: ``(None, headers)``, or ``(Retry-After seconds, headers)`` if spent.

        :param now: epoch seconds.
        """
        with self._lock:
            end = self._current_period(now)[1]
            if self._used >= self._quota:
                return max(1, math.ceil(end - now)), self._headers()
            self._used += 1
            return None, self._headers()

    def headers(self, now: float) -> list[tuple[bytes, bytes]]:
        """``X-Rate-Limit-Limit``, ``-Remaining`` and ``-Reset`` as they stand (nothing spent)."""
        with self._lock:
            self._current_period(now)
            return self._headers()

    def quota(self, now: float) -> dict:
        """The current period: ``limit``, ``used``, ``remaining``, ``reset`` (ISO 8601 UTC)."""
        with self._lock:
            self._current_period(now)
            remaining = max(self._quota - self._used, 0)
            return {"limit": self._quota, "used": self._used, "remaining": remaining, "reset": self._reset}

    def _headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"x-rate-limit-limit", b"%d" % self._quota),
            (b"x-rate-limit-remaining", b"%d" % max(self._quota - self._used, 0)),
            (b"x-rate-limit-reset", self._reset.encode()),
        ]

    def _current_period(self, now: float) -> tuple[float, float]:
        """The period ``now`` falls in, starting a new one (nothing used, the quota worked out) when needed."""
        if self._period is not None and self._period[0] <= now < self._period[1]:
            return self._period
        seconds = self.settings.quota_period_seconds
        if seconds is None:
            day = datetime.fromtimestamp(now, tz=UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            start, end = day.timestamp(), (day + timedelta(days=1)).timestamp()
        else:
            index = math.floor((now - self._origin) / seconds)
            start, end = self._origin + index * seconds, self._origin + (index + 1) * seconds
        self._period = (start, end)
        self._reset = iso_utc(end)
        self._quota = self.settings.daily_quota or self._codat_quota()
        self._used = 0
        return self._period

    def _codat_quota(self) -> int:
        return CODAT_DAILY_REQUESTS_PER_COMPANY * (1 + self._active_companies())
