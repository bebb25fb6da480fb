"""Connection settings, clients and the retrying request loop behind :class:`CodatHook`.

Kept apart from the hook's public methods so that each module stays small. Nothing here logs or raises the API
key or the ``Authorization`` value: both are handed to ``mask_secret`` the moment they are built, kept only in
the clients' headers (which httpx redacts in ``repr``), and scrubbed from any text returned to a caller.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from airflow_provider_codat import __version__
from airflow_provider_codat.budget import (
    BudgetSettings,
    Quota,
    RequestBudget,
    budget_for,
    budget_settings_from,
)
from airflow_provider_codat.budget.request_budget import quota_refusal
from airflow_provider_codat.errors import CodatAPIError, CodatValidationError
from airflow_provider_codat.hooks._deadline import time_allowance
from airflow_provider_codat.hooks.error_messages import error_from_response, error_from_transport
from airflow_provider_codat.hooks.redact import Redactor, literal_forms, redactor_for
from airflow_provider_codat.hooks.retry import RetryPolicy, parse_retry_after, release, retrying
from airflow_provider_codat.safe_repr import shorten
from airflow_provider_codat.timestamps import parse_timestamp

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.codat.io"
DEFAULT_PORTAL_URL = "https://app.codat.io"
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_RETRIES = 5
DEFAULT_MAX_RETRY_TIME = 300.0

_RNG = random.Random()  # backoff jitter


@dataclass(frozen=True)
class Settings:
    """What the hook reads from its Airflow connection."""

    base_url: str
    authorization: str = field(repr=False)
    timeout: float = DEFAULT_TIMEOUT
    max_retries: int = DEFAULT_MAX_RETRIES
    max_retry_time: float = DEFAULT_MAX_RETRY_TIME
    portal_url: str = DEFAULT_PORTAL_URL
    budget: BudgetSettings = field(default_factory=BudgetSettings)


@dataclass(frozen=True)
class Call:
    """One request as the hook means it: what to send, which failures to retry, and until when.

    :param method: the HTTP method.
    :param path: the URL path, built by :mod:`~airflow_provider_codat.hooks.paths`.
    :param params: query parameters (``None`` values are left out).
    :param policy: which failures are retried.
    :param retries: overrides the connection's ``max_retries``.
    :param deadline: epoch seconds: no attempt runs, and no retry waits, past it.
    :param json_body: a JSON body to send (``POST .../syncSettings``); ``None``: no body.
    """

    method: str
    path: str
    params: dict[str, Any] | None = None
    policy: RetryPolicy = RetryPolicy.ALL
    retries: int | None = None
    deadline: float | None = None
    json_body: Any = None

    @property
    def company(self) -> str | None:
        """The company the request is about (its path's ``/companies/{id}``), else ``None``."""
        match = _COMPANY_PATH.match(self.path)
        return match.group(1) if match else None

    @property
    def starts_work(self) -> bool:
        """Whether it starts a read or a refresh, which waits for the daily quota's reserve, rather than carry
        one on (a wait's poll of ``dataStatus`` or a sync's history, or the next page of a read)."""
        if self.method != "GET":
            return True
        if self.path.endswith("/dataStatus") or "/data/history/" in self.path:
            return False
        page = (self.params or {}).get("page")
        return not (isinstance(page, int) and page > 1)


_COMPANY_PATH = re.compile(r"^/companies/([^/]+)(?:/|$)")


def user_agent() -> str:
    try:
        from airflow import __version__ as airflow_version
    except ImportError:  # pragma: no cover - Airflow is a dependency
        airflow_version = "unknown"
    return f"airflow-provider-codat/{__version__} apache-airflow/{airflow_version} httpx/{httpx.__version__}"


def base_url_from(host: str | None, port: int | None) -> str:
    """The API base URL: the connection host (with or without scheme), else ``https://api.codat.io``."""
    if not host:
        return DEFAULT_BASE_URL
    host = host.strip().rstrip("/")
    if "://" not in host:
        host = f"https://{host}" + (f":{port}" if port else "")
    return host


def _number(extra: dict[str, Any], key: str, default: float, cast, minimum: float, conn_id: str):
    value = extra.get(key)
    if value is None or value == "":
        return default
    try:
        number = cast(value)
    except (TypeError, ValueError):
        raise CodatValidationError(
            f"Extra `{key}` of connection `{conn_id}` must be a number, got {shorten(value)}."
        ) from None
    if number < minimum:
        raise CodatValidationError(
            f"Extra `{key}` of connection `{conn_id}` must be >= {minimum}, got {shorten(value)}."
        )
    return number


def settings_from(conn: Any, extra: dict[str, Any], conn_id: str, overrides: dict[str, Any]) -> Settings:
    """Build :class:`Settings` from an Airflow connection; the caller masks ``authorization`` and the key."""
    api_key = (conn.password or "").strip()
    if not api_key:
        raise CodatValidationError(
            f"Connection `{conn_id}` has no API key: set its password to your Codat API key "
            "(Codat portal: Settings > Developers > API keys)."
        )
    encoded = base64.b64encode(api_key.encode()).decode()

    def pick(key, default, cast, minimum):
        if overrides.get(key) is not None:
            return cast(overrides[key])
        return _number(extra, key, default, cast, minimum, conn_id)

    base_url = base_url_from(conn.host, conn.port)
    return Settings(
        base_url=base_url,
        authorization=f"Basic {encoded}",
        timeout=pick("timeout", DEFAULT_TIMEOUT, float, 0.001),
        max_retries=pick("max_retries", DEFAULT_MAX_RETRIES, int, 0),
        max_retry_time=pick("max_retry_time", DEFAULT_MAX_RETRY_TIME, float, 0),
        portal_url=str(extra.get("portal_url") or DEFAULT_PORTAL_URL).rstrip("/"),
        budget=budget_settings_from(extra, conn_id, base_url),
    )


def secrets_of(conn: Any, settings: Settings) -> list[str]:
    """The values to mask: the key and its encoded forms (padded or not, percent-encoded, with ``Basic``)."""
    return literal_forms((conn.password or "").strip())


def client_kwargs(settings: Settings) -> dict[str, Any]:
    return {
        "base_url": settings.base_url,
        "headers": {
            "Authorization": settings.authorization,
            "User-Agent": user_agent(),
            "Accept": "application/json",
        },
        "timeout": httpx.Timeout(settings.timeout),
        "follow_redirects": False,
    }


class Transport:
    """The request loop shared by the hook's sync and async methods.

    Subclasses provide ``_get_settings()``/``_aget_settings()``, ``client`` and ``_aclient()``.

    :ivar sleep: the function that waits between retries (``time.sleep``); replace it in tests.
    :ivar async_sleep: the async twin (``asyncio.sleep``).
    """

    codat_conn_id: str
    _async_gate: asyncio.Semaphore | None = None

    def __init__(self) -> None:
        self.sleep = time.sleep
        self.async_sleep = asyncio.sleep
        self.rng = _RNG  # seeding a generator per hook reads os.urandom: one per process is enough

    def _get_settings(self) -> Settings:  # pragma: no cover - provided by the hook
        raise NotImplementedError

    async def _aget_settings(self) -> Settings:  # pragma: no cover - provided by the hook
        raise NotImplementedError

    def _prepare(
        self, settings: Settings, call: Call, *, asynchronous: bool = False
    ) -> tuple[dict[str, Any] | None, list, Any]:
        """What :meth:`_send` and :meth:`_asend` start from: the cleaned params, the (empty) list of outcomes
        and the retry loop.

        :raises CodatQuotaExhaustedError: the daily quota cannot pay for the call: none is sent.
        """
        budget_for(settings.budget).check_quota(
            starts_work=call.starts_work, method=call.method, path=call.path
        )
        loop = retrying(
            call.method,
            call.path,
            policy=call.policy,
            max_retries=settings.max_retries if call.retries is None else call.retries,
            max_retry_time=settings.max_retry_time,
            deadline=call.deadline,
            sleep=self.async_sleep if asynchronous else self.sleep,
            rng=self.rng,
            asynchronous=asynchronous,
        )
        return _clean(call.params), [], loop

    @staticmethod
    def _record(budget: RequestBudget, outcomes: list, response: httpx.Response) -> httpx.Response:
        """Note an attempt's response (read and unbound) among the outcomes, and the daily quota it reports."""
        outcomes.append(response)
        quota = quota_from(response.headers)
        if quota is not None:
            budget.note(quota)
        return response

    def _send(self, call: Call) -> tuple[httpx.Response, list]:
        """Send with retries; return the final response (any status) and every attempt's outcome."""
        settings = self._get_settings()
        client = self.client
        params, outcomes, loop = self._prepare(settings, call)

        spend = budget_for(settings.budget)

        def attempt() -> httpx.Response:
            try:
                spend.take_token(call.deadline)
                with spend.company_place(call.company, settings.timeout, call.deadline):
                    allowance = attempt_allowance(settings, call.deadline)
                    with time_allowance(allowance):
                        request = client.build_request(
                            call.method, call.path, params=params, timeout=allowance, json=call.json_body
                        )
                        response = client.send(request, stream=True)
                        try:
                            response.read()
                        finally:
                            _unbind(response)
            except BaseException as exc:
                outcomes.append(exc)
                raise
            return self._record(spend, outcomes, response)

        try:
            response = loop(attempt)
        except BaseException as exc:
            _give_up(exc, loop, outcomes, call)  # raises the CodatAPIError for a transport error
            raise
        release(loop, outcomes)
        return response, outcomes

    async def _asend(self, call: Call) -> tuple[httpx.Response, list]:
        """The async twin of :meth:`_send`."""
        settings = await self._aget_settings()
        client = await self._aclient()
        params, outcomes, loop = self._prepare(settings, call, asynchronous=True)

        gate = self._async_gate
        spend = budget_for(settings.budget)

        async def attempt() -> httpx.Response:
            try:
                await spend.atake_token(call.deadline)
                async with spend.acompany_place(call.company, settings.timeout, call.deadline):
                    allowance = attempt_allowance(settings, call.deadline)
                    with time_allowance(allowance):
                        async with _turn(gate, allowance):
                            request = client.build_request(
                                call.method, call.path, params=params, timeout=allowance, json=call.json_body
                            )
                            response = await client.send(request, stream=True)
                            try:
                                await response.aread()
                            finally:
                                await _aunbind(response)
            except BaseException as exc:
                outcomes.append(exc)
                raise
            return self._record(spend, outcomes, response)

        try:
            response = await loop(attempt)
        except BaseException as exc:
            _give_up(exc, loop, outcomes, call)  # raises the CodatAPIError for a transport error
            raise
        release(loop, outcomes)
        return response, outcomes

    @property
    def redactor(self) -> Redactor:
        """Scrubs this connection's key (every spelling) and credential shapes from server text."""
        settings = getattr(self, "_settings", None)
        return redactor_for(settings.authorization if settings is not None else None)

    def _raise_for(self, response: httpx.Response, outcomes: list) -> httpx.Response:
        if response.is_success:
            return response
        quota = quota_from(response.headers)
        if response.status_code == 429 and quota is not None and quota.remaining <= 0:
            # Codat's daily quota, not a rate to slow down for: the same refusal the budget gives before
            # sending, so that the task pauses until the reset instead of failing.
            request = response.request
            raise quota_refusal(quota, 0, method=request.method, path=request.url.path, sent=True)
        raise error_from_response(
            response,
            conn_id=self.codat_conn_id,
            retries=max(0, len(outcomes) - 1),
            retry_after=response.headers.get("retry-after"),
            redact=self.redactor.text,
        )

    def _request(self, method: str, path: str, params=None, **kw) -> httpx.Response:
        return self._raise_for(*self._send(Call(method, path, params, **kw)))

    async def _arequest(self, method: str, path: str, params=None, **kw) -> httpx.Response:
        return self._raise_for(*(await self._asend(Call(method, path, params, **kw))))

    def _get_json(self, path: str, params=None, *, deadline: float | None = None) -> Any:
        """The decoded answer, scrubbed (pages of records are read by ``_get_exact``, as Codat sent them)."""
        return self.redactor.json(_json(self._request("GET", path, params, deadline=deadline)))

    async def _aget_json(self, path: str, params=None, *, deadline: float | None = None) -> Any:
        return self.redactor.json(_json(await self._arequest("GET", path, params, deadline=deadline)))


@contextlib.asynccontextmanager
async def _turn(gate: asyncio.Semaphore | None, allowance: float):
    """Hold a place among the shared client's requests in flight; waiting for it counts against the attempt's time allowance."""
    if gate is None:
        yield
        return
    try:
        await asyncio.wait_for(gate.acquire(), allowance)
    except TimeoutError:
        raise httpx.PoolTimeout(
            "No turn among the shared client's requests within the request's time allowance."
        ) from None
    try:
        yield
    finally:
        gate.release()


def _give_up(exc: BaseException, loop, outcomes: list, call: Call) -> None:
    """The retry loop raised ``exc``: break its cycles; for a transport error, raise the error that reports it.

    The error is raised here rather than bound to a name in ``_send``, whose frame its traceback holds.
    """
    retries = len(outcomes) - 1
    release(loop, outcomes, raised=exc)
    # The caller's frame (in the error's traceback) holds ``outcomes``: empty the list so that it does not hold
    # the error's cause, a cycle that would keep the earlier attempts' responses.
    outcomes.clear()
    if isinstance(exc, httpx.TransportError):
        raise error_from_transport(exc, method=call.method, path=call.path, retries=retries) from exc


# httpx wraps each response's stream in a ``Bound(Async)Stream`` that points back at the response (to set
# ``elapsed`` on close): a reference cycle, so a page body (up to ~1 MB) would be freed only when the cyclic
# garbage collector runs (encode/httpx#3733). Hence the hook reads with ``stream=True`` and, once the body is
# read (or reading failed), closes the response and swaps the spent stream for an unbound one.
def _unbind(response: httpx.Response) -> None:
    response.close()
    response.stream = httpx.ByteStream(b"")


async def _aunbind(response: httpx.Response) -> None:
    await response.aclose()
    response.stream = httpx.ByteStream(b"")


def _clean(params: dict[str, Any] | None) -> dict[str, Any] | None:
    if not params:
        return None
    return {k: v for k, v in params.items() if v is not None}


def reset_epoch(value: str | None) -> float | None:
    """Epoch seconds of ``X-Rate-Limit-Reset`` (an ISO 8601 or HTTP date); ``None`` when absent or unreadable."""
    if not value:
        return None
    moment = parse_timestamp(value)
    if moment is not None:
        return moment.timestamp()
    seconds = parse_retry_after(value)
    return time.time() + seconds if seconds is not None else None


def quota_from(headers: httpx.Headers) -> Quota | None:
    """Codat's daily quota from a response's ``X-Rate-Limit-*`` headers; ``None`` without ``-Remaining``."""
    remaining = _int(headers.get("x-rate-limit-remaining"))
    if remaining is None:
        return None
    return Quota(
        limit=_int(headers.get("x-rate-limit-limit")),
        remaining=remaining,
        resets_at=reset_epoch(headers.get("x-rate-limit-reset")),
        observed_at=time.time(),
    )


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def attempt_allowance(settings: Settings, deadline: float | None) -> float:
    """Seconds one attempt may take in all: the connection's ``timeout``, or less when the caller's deadline
    is nearer. At least a tenth of a second, so that an attempt started just before the deadline fails as a
    timeout rather than with a confusing zero allowance."""
    allowance = settings.timeout
    if deadline is not None:
        allowance = min(allowance, deadline - time.time())
    return max(0.1, allowance)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        request = response.request
        raise CodatAPIError(
            f"Codat answered {response.status_code} for {request.method} {request.url.path} with a body that is "
            "not JSON; check that the connection's base URL points at the Codat API.",
            status_code=response.status_code,
            method=request.method,
            path=request.url.path,
        ) from None
