"""CodatHook: the one place that talks HTTP to Codat, sync (``httpx.Client``) and async (``httpx.AsyncClient``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from functools import cached_property
from typing import Any

import httpx
from airflow.sdk import BaseHook

from airflow_provider_codat.budget import BudgetSettings
from airflow_provider_codat.datatypes import DataType, get_data_type
from airflow_provider_codat.defaults import DEFAULT_CONN_ID
from airflow_provider_codat.errors import (
    CodatAPIError,
    CodatDatasetInProgressError,
    CodatPagingError,
    CodatValidationError,
)
from airflow_provider_codat.hooks._clients import SHARED, build_client
from airflow_provider_codat.hooks._transport import (
    Call,
    Settings,
    Transport,
    client_kwargs,
    secrets_of,
    settings_from,
)
from airflow_provider_codat.hooks.error_messages import restated
from airflow_provider_codat.hooks.exact_json import loads_exact
from airflow_provider_codat.hooks.paging import DEFAULT_PAGE_SIZE, Page, PagedRead, iter_envelopes
from airflow_provider_codat.hooks.paths import (
    company_path,
    connection_param,
    history_path,
    list_path,
    queue_path,
    report_request,
)
from airflow_provider_codat.hooks.redact import redactor_for
from airflow_provider_codat.hooks.retry import RetryPolicy, outcome_is_ambiguous
from airflow_provider_codat.validation import require_order_by, require_page_size, require_query
from airflow_provider_codat.values import CompanyId
from airflow_provider_codat.version_compat import hook_field_behaviour, hook_form_widgets

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "CodatAPIError",
    "CodatDatasetInProgressError",
    "CodatHook",
    "CodatPagingError",
    "CodatValidationError",
]

log = logging.getLogger(__name__)


def _connection_type() -> dict[str, Any]:
    from airflow_provider_codat import get_provider_info

    (declared,) = get_provider_info()["connection-types"]
    return declared


class CodatHook(BaseHook, Transport):
    """Talk to the Codat API.

    Connection (type ``codat``): password = API key; host = base URL (default ``https://api.codat.io``);
    extras ``timeout`` (seconds, default 30), ``max_retries`` (default 5), ``max_retry_time`` (seconds spent
    retrying one request, default 300), ``portal_url`` (default ``https://app.codat.io``).

    ``timeout`` bounds each whole request (connect and every read together), not each socket read; calls that
    take ``deadline`` (epoch seconds) neither start an attempt with more time than is left nor wait for a retry
    past it.

    One ``httpx.Client`` per hook, created on first use; the async methods borrow the ``httpx.AsyncClient``
    shared by every hook of the same connection in the running event loop (a triggerer's waits share one
    client and its connections). ``close()`` / ``aclose()`` release them. Nothing is read or sent in
    ``__init__``.

    :param codat_conn_id: the Airflow connection id.
    :param timeout: overrides the ``timeout`` extra.
    :param max_retries: overrides the ``max_retries`` extra.
    :param max_retry_time: overrides the ``max_retry_time`` extra.
    """

    conn_name_attr = "codat_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = "codat"
    hook_name = "Codat"

    def __init__(
        self,
        codat_conn_id: str = default_conn_name,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        max_retry_time: float | None = None,
        **kwargs: Any,
    ) -> None:
        BaseHook.__init__(self, **kwargs)
        Transport.__init__(self)
        self.codat_conn_id = codat_conn_id
        self._overrides = {"timeout": timeout, "max_retries": max_retries, "max_retry_time": max_retry_time}
        self._settings: Settings | None = None
        self._async_client: httpx.AsyncClient | None = None
        self._async_client_lock = asyncio.Lock()
        self._async_client_key: Settings | None = None
        self._async_gate: asyncio.Semaphore | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(codat_conn_id={self.codat_conn_id!r})"

    # -- the connection form: declared in get_provider_info(); Airflow 3.1 asks the hook for it instead ------
    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The form's standard fields (hidden, relabelled, placeholders), as the provider info declares them."""
        return hook_field_behaviour(_connection_type())

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The form's extra fields, as the provider info declares them (``conn-fields``)."""
        return hook_form_widgets(_connection_type())

    # -- connection and clients ----------------------------------------------------------------------------
    def _get_settings(self) -> Settings:
        if self._settings is None:
            from airflow.sdk.log import mask_secret

            conn = self.get_connection(self.codat_conn_id)
            settings = settings_from(conn, conn.extra_dejson, self.codat_conn_id, self._overrides)
            for secret in secrets_of(conn, settings):
                mask_secret(secret)
            self._settings = settings
        return self._settings

    async def _aget_settings(self) -> Settings:
        if self._settings is None:
            from airflow_provider_codat.version_compat import aextra_dejson, amask_secret

            conn = await self.aget_connection(self.codat_conn_id)
            extra = await aextra_dejson(conn)
            settings = settings_from(conn, extra, self.codat_conn_id, self._overrides)
            for secret in secrets_of(conn, settings):
                await amask_secret(secret)
            # Compiling the key's scrubbing pattern takes tens of ms: do it off the event loop, once per key.
            await asyncio.to_thread(redactor_for, settings.authorization)
            self._settings = settings
        return self._settings

    @cached_property
    def client(self) -> httpx.Client:
        """The hook's ``httpx.Client`` (base URL, auth and ``User-Agent`` set), created on first use."""
        return build_client(client_kwargs(self._get_settings()))

    async def _aclient(self) -> httpx.AsyncClient:
        settings = await self._aget_settings()
        async with self._async_client_lock:  # borrowed once per hook, however many coroutines ask at once
            if self._async_client is None:
                # Keyed by the settings: a rotated key or a changed host gets a client of its own.
                self._async_client, self._async_gate = await SHARED.borrow(settings, client_kwargs(settings))
                self._async_client_key = settings
        return self._async_client

    def budget_settings(self) -> BudgetSettings:
        """The request budget this connection spends from (its extras; see :mod:`airflow_provider_codat.budget`)."""
        return self._get_settings().budget

    def get_conn(self) -> httpx.Client:
        return self.client

    def close(self) -> None:
        """Close the sync client (the async one is closed by :meth:`aclose`)."""
        if "client" in self.__dict__:
            self.__dict__.pop("client").close()

    async def aclose(self) -> None:
        """Give the shared async client back (the last hook to do so closes it) and close the sync one."""
        if self._async_client is not None:
            self._async_client = None
            await SHARED.give_back(self._async_client_key)
        self.close()

    def __enter__(self) -> CodatHook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def portal_url(self, company_id: str) -> str:
        """The company's page in the Codat portal (``portal_url`` extra, default ``https://app.codat.io``)."""
        path = company_path(company_id, "/summary")  # checked before the connection is read
        return f"{self._get_settings().portal_url}{path}"

    def test_connection(self) -> tuple[bool, str]:
        """Read one company (one cheap request, no retries); never puts the key in the reason."""
        try:
            self._request("GET", "/companies", {"page": 1, "pageSize": 1}, retries=0)
        except Exception as exc:
            return False, self.redactor.text(f"{type(exc).__name__}: {exc}")
        return True, f"Connected to Codat at {self._get_settings().base_url}."

    # -- companies and connections -------------------------------------------------------------------------
    def list_companies(
        self,
        query: str | None = None,
        *,
        tags: str | None = None,
        order_by: str | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> Iterator[dict]:
        """Every company (all pages, read one page at a time).

        :param query: a Codat query (see :mod:`airflow_provider_codat.query`).
        :param tags: a Codat tags filter, e.g. ``region=uk``.
        :param order_by: a field, ``-field`` for descending.
        :param page_size: companies per request.
        """
        params = {
            "query": require_query(query),
            "tags": require_query(tags, "tags"),
            "orderBy": require_order_by(order_by),
        }
        return self._records("/companies", params, require_page_size(page_size))

    def get_company(self, company_id: str) -> dict:
        """One company, with its ``dataConnections``."""
        return self._get_json(company_path(company_id))

    async def aget_company(self, company_id: str) -> dict:
        """Async twin of :meth:`get_company`."""
        return await self._aget_json(company_path(company_id))

    def list_connections(
        self, company_id: str, *, query: str | None = None, page_size: int = DEFAULT_PAGE_SIZE
    ) -> Iterator[dict]:
        """Every data connection of a company (all pages)."""
        path = company_path(company_id, "/connections")
        return self._records(path, {"query": require_query(query)}, require_page_size(page_size))

    def get_sync_settings(self) -> list[dict]:
        """The client's sync settings (``GET /profile/syncSettings``), one dict per data type."""
        body = self._get_json("/profile/syncSettings")
        return list(body.get("settings") or []) if isinstance(body, dict) else list(body or [])

    def get_company_sync_settings(self, company_id: str) -> dict:
        """A company's sync settings (``GET /companies/{companyId}/syncSettings``): ``{companyId, settings:
        [SyncSetting...], overridesDefaults}``; each setting has ``dataType``, ``fetchOnFirstLink``,
        ``syncSchedule`` (hours), ``syncOrder`` and optional history settings."""
        body = self._get_json(company_path(company_id, "/syncSettings"))
        if not isinstance(body, dict) or not isinstance(body.get("settings"), list):
            raise CodatAPIError(
                "Codat's answer to GET syncSettings has no settings list.",
                method="GET",
                path=company_path(company_id, "/syncSettings"),
            )
        return body

    def set_company_sync_settings(
        self, company_id: str, settings: list[dict], *, overrides_defaults: bool = True
    ) -> None:
        """Set a company's sync settings (``POST /companies/{companyId}/syncSettings``, 204). Codat asks for one
        ``SyncSetting`` per data type: pass them all (what :meth:`get_company_sync_settings` returned, changed).

        :param company_id: the company (a UUID).
        :param settings: ``SyncSetting`` objects, each with ``dataType``, ``fetchOnFirstLink``, ``syncSchedule``
            and ``syncOrder``.
        :param overrides_defaults: the company's settings replace the client's.
        """
        company_id = CompanyId.parse(company_id)
        for setting in settings:
            get_data_type(setting.get("dataType") if isinstance(setting, dict) else None)
        path = company_path(company_id, "/syncSettings")
        body = {
            "companyId": str(company_id),
            "settings": list(settings),
            "overridesDefaults": overrides_defaults,
        }
        self._raise_for(*self._send(Call("POST", path, json_body=body)))

    # -- refreshes and their status ------------------------------------------------------------------------
    def get_data_status(self, company_id: str, *, deadline: float | None = None) -> dict[str, dict]:
        """``dataStatus``: one entry per data type, keyed by the type (one call covers every type).

        :param deadline: epoch seconds the call (with its retries) must not outlive.
        :raises CodatAPIError: also when the answer is not an object keyed by data type (not transient).
        """
        path = company_path(company_id, "/dataStatus")
        return _status(self._get_json(path, deadline=deadline), path)

    async def aget_data_status(self, company_id: str, *, deadline: float | None = None) -> dict[str, dict]:
        """Async twin of :meth:`get_data_status`."""
        path = company_path(company_id, "/dataStatus")
        return _status(await self._aget_json(path, deadline=deadline), path)

    def refresh_all_data(self, company_id: str) -> None:
        """Queue every *fetch on first link* type (``POST data/all``, 204, returns no dataset ids).

        Retried only after a 429 or a connection that never opened: after a lost answer (timeout, dropped
        connection, 5xx) Codat may have queued the syncs already, and a second ``data/all`` could queue a second
        round. The caller then sees the error and can look at ``dataStatus`` to find out.
        """
        path = company_path(company_id, "/data/all")
        try:
            self._request("POST", path, policy=RetryPolicy.UNSENT)
        except CodatAPIError as exc:
            if exc.status_code is not None and exc.status_code != 408 and exc.status_code < 500:
                raise
            message = (
                f"{exc.message} The answer to data/all was lost, so Codat may have queued the syncs anyway: "
                "look at dataStatus before queueing again."
            )
            raise restated(exc, message) from exc

    def queue_data_type(
        self, company_id: str, data_type: str | DataType, connection_id: str | None = None
    ) -> dict:
        """Queue one data type (``POST data/queue/{dataType}``); return the PullOperation.

        Retried like a read. A retry cannot queue a second sync while the first is running: if the first
        attempt reached Codat and only its answer was lost, the retry gets the in-progress error naming the
        dataset that attempt queued, and this method returns that PullOperation. On the first attempt the
        in-progress error means someone else's sync is running and is raised as
        :class:`CodatDatasetInProgressError` (join it or fail, the caller decides).

        :raises CodatDatasetInProgressError: a sync of the type was already running.
        """
        company_id = CompanyId.parse(company_id)
        entry = get_data_type(data_type)
        params = {"connectionId": connection_param(connection_id)}
        response, outcomes = self._send(Call("POST", queue_path(company_id, entry), params))
        try:
            self._raise_for(response, outcomes)
        except CodatDatasetInProgressError as exc:
            if not (any(outcome_is_ambiguous(o) for o in outcomes[:-1]) and exc.dataset_id):
                raise
            log.info(
                "Codat %s sync for company %s: an earlier attempt's answer was lost; dataset %s is the sync "
                "it queued.",
                entry.key,
                company_id,
                exc.dataset_id,
            )
            return self.get_pull_operation(company_id, exc.dataset_id)
        return self.redactor.json(_json_object(response))

    def get_pull_operation(self, company_id: str, dataset_id: str, *, deadline: float | None = None) -> dict:
        """One PullOperation (``data/history/{datasetId}``).

        :param deadline: epoch seconds the call (with its retries) must not outlive.
        """
        return self._get_json(history_path(company_id, dataset_id), deadline=deadline)

    async def aget_pull_operation(
        self, company_id: str, dataset_id: str, *, deadline: float | None = None
    ) -> dict:
        """Async twin of :meth:`get_pull_operation`."""
        return await self._aget_json(history_path(company_id, dataset_id), deadline=deadline)

    def iter_pull_operations(
        self,
        company_id: str,
        *,
        query: str | None = None,
        order_by: str | None = "-requested",
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> Iterator[dict]:
        """PullOperations of a company (``data/history``, all pages), newest first by default."""
        path = company_path(company_id, "/data/history")
        params = {"query": require_query(query), "orderBy": require_order_by(order_by)}
        return self._records(path, params, require_page_size(page_size))

    # -- reading data ---------------------------------------------------------------------------------------
    def iter_pages(
        self,
        company_id: str,
        data_type: str | DataType,
        *,
        query: str | None = None,
        order_by: str | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        connection_id: str | None = None,
        account_id: str | None = None,
    ) -> PagedRead:
        """Yield the records of a paged data type one page (a list) at a time.

        The default page size, 1000, makes ten times fewer calls than Codat's default of 100 while avoiding
        the slow 5000-record pages. Arguments are checked now, once, before the first request. Numbers keep
        every digit (decimals come back as :class:`~decimal.Decimal`). Each page is a :class:`Page`: a list
        that also carries ``number``, ``total`` (``totalResults``) and ``has_next``.

        :param company_id: the company (a :class:`~airflow_provider_codat.values.CompanyId` is taken as it is).
        :param data_type: a catalogue entry (taken as it is) or key (``invoices``, ``bankTransactions`` ...).
        :param query: a Codat query (build it with :mod:`airflow_provider_codat.query`).
        :param order_by: a field, ``-field`` for descending.
        :param page_size: records per request, 1 to 5000.
        :param connection_id: required for connection- and bank-account-scoped types.
        :param account_id: the bank account, required for ``bankTransactions``.
        :raises CodatPagingError: when an envelope contradicts itself or the list cycles.
        """
        path = list_path(data_type, company_id, connection_id, account_id)
        params = {"query": require_query(query), "orderBy": require_order_by(order_by)}
        return PagedRead(lambda p: self._get_exact(path, p), path, params, require_page_size(page_size))

    def get_page(self, company_id: str, data_type: str | DataType, *, page: int = 1, **options: Any) -> Page:
        """Read one page of a paged data type.

        :param page: the page number, from 1.
        :param options: the keyword arguments of :meth:`iter_pages` (``query``, ``order_by``, ``page_size``,
            ``connection_id``, ``account_id``), checked the same way.
        :raises CodatPagingError: when the envelope contradicts itself.
        """
        return self.iter_pages(company_id, data_type, **options).read(page)

    def get_report(
        self, company_id: str, data_type: str | DataType, *, connection_id: str | None = None, **params: Any
    ) -> dict:
        """Read a one-object data type: ``company`` (info), a financial statement, ``commerce-companyInfo``.

        Financial statements take ``periodLength`` and ``periodsToCompare`` (default 1 and 24: two years by
        month) and optionally ``startMonth`` (a date); snake_case names are accepted too. Numbers keep every
        digit (decimals come back as :class:`~decimal.Decimal`).
        """
        path, query = report_request(data_type, company_id, connection_id, params)
        body = self._get_exact(path, query)
        if not isinstance(body, dict):
            raise CodatAPIError(
                f"Codat answered GET {path} with something other than a JSON object.", path=path
            )
        return body

    def _records(self, path: str, params: dict[str, Any], page_size: int) -> Iterator[dict]:
        for page in iter_envelopes(lambda p: self._get_json(path, p), path, params, page_size):
            yield from page

    def _get_exact(self, path: str, params: dict[str, Any]) -> Any:
        """GET a body of records, decoded with every digit kept (:mod:`.exact_json`)."""
        response = self._request("GET", path, params)
        try:
            return loads_exact(response.content)
        except ValueError:
            raise CodatAPIError(
                f"Codat answered GET {path} with {response.status_code} and a body that is not JSON; check that "
                "the connection's base URL points at the Codat API.",
                status_code=response.status_code,
                method="GET",
                path=path,
            ) from None


def _status(body: Any, path: str) -> dict[str, dict]:
    if not isinstance(body, dict):
        # Asking again would get the same answer: not transient (status 200, the answer it came in).
        raise CodatAPIError(
            f"Codat answered GET {path} with a JSON {type(body).__name__}, not an object keyed by data type; "
            "check that the connection's base URL points at the Codat API.",
            status_code=200,
            error="malformed dataStatus",
            method="GET",
            path=path,
        )
    return body


def _json_object(response: httpx.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise CodatAPIError(
            f"Codat answered {response.request.method} {response.request.url.path} with "
            f"{response.status_code} but no JSON object.",
            status_code=response.status_code,
            method=response.request.method,
            path=response.request.url.path,
        )
    return body
