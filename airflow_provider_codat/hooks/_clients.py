"""HTTP clients for the hook: one TLS context per process, one shared ``AsyncClient`` per (connection, event loop).

A triggerer runs hundreds of waits in one event loop. Each building its own ``httpx.AsyncClient`` costs ~20 ms of
CPU and ~830 KB for a TLS context loaded from the CA bundle (even for ``http://``), holds its own sockets and
never reuses a connection between polls. Here every hook in a loop that talks to the same connection borrows
one client: it is built once, keeps idle connections longer than the longest poll interval, and is closed when
its last borrower gives it back.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any

import httpx

from airflow_provider_codat.hooks import _deadline

# Idle connections are kept past the longest poll interval (300 s by default), so that a wait's next poll
# reuses its connection (no new TCP and TLS handshake); the server may still close them sooner, which httpcore
# notices before reuse.
KEEPALIVE_SECONDS = 330.0
# Requests in flight on one shared client. httpcore's pool rescans every connection for every queued request
# (quadratic: with 1,000 waits polling together it stalls the loop for seconds), so requests queue in front of
# the pool instead, on a semaphore, and the pool never holds more than it has connections for.
MAX_IN_FLIGHT = 24
LIMITS = httpx.Limits(
    max_connections=MAX_IN_FLIGHT, max_keepalive_connections=MAX_IN_FLIGHT, keepalive_expiry=KEEPALIVE_SECONDS
)

_tls_lock = threading.Lock()
_tls_context: ssl.SSLContext | None = None


def tls_context() -> ssl.SSLContext:
    """The process's one TLS context (certifi's CA bundle, as httpx would build it), built on first use."""
    global _tls_context
    with _tls_lock:
        if _tls_context is None:
            _tls_context = httpx.create_ssl_context()
        return _tls_context


def build_client(kwargs: dict[str, Any]) -> httpx.Client:
    """A sync client with the shared TLS context and the whole-request deadline installed."""
    client = httpx.Client(verify=tls_context(), limits=LIMITS, **kwargs)
    _deadline.install(client)
    return client


def build_async_client(kwargs: dict[str, Any]) -> httpx.AsyncClient:
    """The async twin of :func:`build_client` (call it with the TLS context already built: see :func:`alend`)."""
    client = httpx.AsyncClient(verify=tls_context(), limits=LIMITS, **kwargs)
    _deadline.install(client)
    return client


@dataclass
class _Lent:
    ready: asyncio.Future
    users: int = 0
    client: httpx.AsyncClient | None = field(default=None)
    gate: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(MAX_IN_FLIGHT))


class SharedAsyncClients:
    """Lends one ``AsyncClient`` per (key, running event loop); closes it when the last borrower returns it.

    :ivar built: how many clients were built (the benchmark reports it).
    """

    def __init__(self) -> None:
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Any, _Lent]] = (
            weakref.WeakKeyDictionary()
        )
        self.built = 0

    async def borrow(self, key: Any, kwargs: dict[str, Any]) -> tuple[httpx.AsyncClient, asyncio.Semaphore]:
        """The client for ``key`` in this loop, built from ``kwargs`` if there is none yet, and the semaphore
        every request on it must hold.

        :param key: what identifies a client (hashable; the connection's settings).
        :param kwargs: ``httpx.AsyncClient`` arguments.
        """
        loop = asyncio.get_running_loop()
        lent = self._loops.setdefault(loop, {}).get(key)
        if lent is None:
            lent = _Lent(ready=loop.create_future())
            self._loops[loop][key] = lent
            try:
                if _tls_context is None:  # loading the CA bundle reads files: off the event loop
                    await asyncio.to_thread(tls_context)
                lent.client = build_async_client(kwargs)
                self.built += 1
                lent.ready.set_result(None)
            except BaseException as exc:
                self._loops[loop].pop(key, None)
                lent.ready.set_exception(exc)
                lent.ready.exception()  # retrieved: the borrowers waiting on it get it raised
                raise
        lent.users += 1
        try:
            await asyncio.shield(lent.ready)
        except BaseException:
            lent.users -= 1
            raise
        return lent.client, lent.gate

    async def give_back(self, key: Any) -> None:
        """Return a borrowed client; the last borrower's return closes it."""
        loop = asyncio.get_running_loop()
        lent = self._loops.get(loop, {}).get(key)
        if lent is None:
            return
        lent.users -= 1
        if lent.users <= 0:
            self._loops[loop].pop(key, None)
            if lent.client is not None:
                await lent.client.aclose()

    def open_clients(self) -> int:
        """Clients lent out now, over every loop."""
        return sum(len(entries) for entries in self._loops.values())


SHARED = SharedAsyncClients()
