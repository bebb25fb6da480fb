"""The front door of the simulated API: request log, Codat's rate limits (:mod:`.limits`), faults,
authentication and the rate-limit headers.

A plain ASGI middleware, so a ``drop`` fault can start a response and then abort it: uvicorn closes the
socket and the client sees the connection end mid-response.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json

from airflow_provider_codat.simulator.echo import echo_answer
from airflow_provider_codat.simulator.error_bodies import error_body
from airflow_provider_codat.simulator.world import SimulatorState

CONTROL_PREFIX = "/_simulator"
_COMPANY_PREFIX = "/companies/"
_TOO_MANY = "You have made too many requests in a given amount of time; please retry later."
_HTML = (
    b"<html><head><title>%d</title></head><body><h1>%d Bad Gateway</h1><p>upstream error</p></body></html>"
)


class DroppedConnection(Exception):
    """Raised mid-response so the server closes the connection without completing the answer."""


def _key_from_header(value: str | None) -> str | None:
    """Codat's scheme: ``Basic`` + base64 of the bare key (no ``user:`` prefix)."""
    if not value:
        return None
    scheme, _, encoded = value.partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        return None
    try:
        return base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None


def _company_of(path: str) -> str | None:
    """The company a path is about (``/companies/{companyId}`` and below), whose concurrency it uses."""
    if not path.startswith(_COMPANY_PREFIX):
        return None
    company_id = path[len(_COMPANY_PREFIX) :].split("/", 1)[0]
    return company_id or None


async def _disconnected(receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class FrontDoor:
    """ASGI middleware in front of every Codat route (the ``/_simulator`` control routes skip it).

    :param app: the wrapped ASGI app (the FastAPI app's router stack).
    :param get_state: returns the current :class:`SimulatorState` (replaced between tests).
    """

    def __init__(self, app, get_state) -> None:
        self.app = app
        self.get_state = get_state

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        state: SimulatorState = self.get_state()
        now = state.clock.timestamp()
        client = (scope.get("client") or ("unknown", 0))[0]
        entry = self._log(state, scope, now, client)
        limits = state.limits
        retry_after = limits.arrive(client, now)
        if retry_after is not None:
            await self._limited(send, entry, "minute", retry_after, limits.headers(now))
            return
        company_id = _company_of(scope["path"])
        if company_id is not None and not limits.enter(company_id):
            await self._limited(send, entry, "concurrent", 1, limits.headers(now))
            return
        try:
            await self._admitted(state, scope, receive, send, entry, now)
        finally:
            if company_id is not None:
                limits.leave(company_id)

    async def _admitted(self, state: SimulatorState, scope, receive, send, entry: dict, now: float) -> None:
        """Faults, authentication and the daily quota, then the route (in flight for its company throughout)."""
        headers = state.limits.headers(now)
        if await self._injected(state, scope, send, entry, headers):
            return
        key = _key_from_header(self._header(scope, b"authorization"))
        if key is None or key != state.api_key:
            await self._answer(
                send, entry, 401, headers, error_body(401, "Unauthorized", service="PublicApi")
            )
            return
        retry_after, headers = state.limits.spend(now)
        if retry_after is not None:
            await self._limited(send, entry, "daily", retry_after, headers)
            return
        await self._pass_on(state, scope, receive, send, entry, headers)

    async def _limited(self, send, entry: dict, limit: str, retry_after: int, headers: list) -> None:
        """Codat's 429 for one of its limits (``minute``, ``daily``, ``concurrent``), noted in the log entry."""
        entry["limit"] = limit
        headers = [*headers, (b"retry-after", str(retry_after).encode())]
        await self._answer(send, entry, 429, headers, error_body(429, _TOO_MANY, can_be_retried="Unknown"))

    @staticmethod
    def _log(state: SimulatorState, scope, now: float, client: str) -> dict:
        """Append the request to the state's log; the entry gets the answer's status once it is sent."""
        entry = {
            "method": scope["method"],
            "path": scope["path"],
            "query": scope.get("query_string", b"").decode(),
            "time": now,
            "client": client,
            "status": None,
            "limit": None,
        }
        with state.lock:
            state.request_log.append(entry)
        return entry

    async def _injected(self, state: SimulatorState, scope, send, entry: dict, headers: list) -> bool:
        """Apply the faults that come before authentication: a delay, a dropped connection, or an answer in
        place of the real one. ``True`` when the request has been answered."""
        method, path = scope["method"], scope["path"]
        latency = state.faults.take(method, path, ("latency",))
        if latency is not None:
            await asyncio.sleep(latency.delay or 0)
        if state.faults.take(method, path, ("drop",)) is not None:
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"100")]}
            )
            await send({"type": "http.response.body", "body": b'{"results": [', "more_body": True})
            raise DroppedConnection(f"fault: dropped {method} {path}")
        fault = state.faults.take(method, path, ("rate_limit", "server_error", "echo_auth", "malformed"))
        if fault is None:
            return False
        await self._fault_answer(fault, scope, send, entry, headers)
        return True

    async def _fault_answer(self, fault, scope, send, entry: dict, headers: list) -> None:
        """Answer with the fault instead of the route: a malformed body, an echo of the credentials, a 429 or
        a server error (502/503/504 as a proxy's HTML)."""
        if fault.kind == "malformed":
            await self._answer(send, entry, 200, headers, fault.body)
        elif fault.kind == "echo_auth":
            authorization = self._header(scope, b"authorization") or ""
            payload, content_type = echo_answer(fault.status, authorization, fault.echo, fault.body_format)
            await self._raw(send, entry, fault.status, headers, payload, content_type)
        elif fault.kind == "rate_limit":
            headers.append((b"retry-after", str(fault.retry_after).encode()))
            await self._answer(
                send, entry, 429, headers, error_body(429, "Too many requests.", can_be_retried="Unknown")
            )
        elif (fault.status or 500) == 500:
            await self._answer(
                send, entry, 500, headers, error_body(500, "An internal error occurred.", service="PublicApi")
            )
        else:
            # Proxies in front of Codat answer 502/503/504 with HTML, not Codat's JSON.
            status = fault.status
            await self._raw(send, entry, status, headers, _HTML % (status, status), b"text/html")

    async def _pass_on(self, state: SimulatorState, scope, receive, send, entry: dict, headers: list) -> None:
        """Let the route answer, adding the rate-limit headers and noting the status (a ``trickle`` fault
        sends the body slowly)."""

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                entry["status"] = message["status"]
                message = {**message, "headers": list(message.get("headers", [])) + headers}
            await send(message)

        trickle = state.faults.take(scope["method"], scope["path"], ("trickle",))
        if trickle is not None:
            await self._trickle(scope, receive, send_with_headers, trickle.delay or 0.5)
            return
        await self.app(scope, receive, send_with_headers)

    async def _trickle(self, scope, receive, send, delay: float) -> None:
        """Answer as the app does, but send the body one byte every ``delay`` seconds (a stalling proxy),
        until it is all sent or the client hangs up."""
        messages: list[dict] = []

        async def keep(message) -> None:
            messages.append(message)

        await self.app(scope, receive, keep)
        body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
        await send(messages[0])
        gone = asyncio.ensure_future(_disconnected(receive))
        try:
            for index in range(len(body)):
                if gone.done():
                    return
                await send({"type": "http.response.body", "body": body[index : index + 1], "more_body": True})
                await asyncio.sleep(delay)
            await send({"type": "http.response.body", "body": b""})
        finally:
            gone.cancel()

    @staticmethod
    def _header(scope, name: bytes) -> str | None:
        for key, value in scope.get("headers", []):
            if key.lower() == name:
                return value.decode("latin-1")
        return None

    async def _answer(self, send, entry: dict, status: int, headers: list, body: dict) -> None:
        await self._raw(send, entry, status, headers, json.dumps(body).encode(), b"application/json")

    @staticmethod
    async def _raw(
        send, entry: dict, status: int, headers: list, payload: bytes, content_type: bytes
    ) -> None:
        entry["status"] = status
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", content_type),
                    (b"content-length", str(len(payload)).encode()),
                    *headers,
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})
