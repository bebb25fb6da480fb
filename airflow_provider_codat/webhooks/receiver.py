"""``POST /webhooks``: take a signed Codat delivery, check it, store it, and only then answer.

The order matters: the size is checked before the body is read in full, the headers and the timestamp before the
signature, the signature (over the raw bytes) before anything is parsed, and the delivery is stored (its inbox
row: :mod:`.store`) before it is answered ``2xx``; a drainer in a process of its own writes its asset events
(:mod:`.drain`, :mod:`.drainer_process`). Codat treats a ``2xx`` as
delivered for good, so nothing is answered ``2xx`` that a killed process could lose. Answers are short and fixed:
they never repeat what was sent.

=====  ==========================================================================================
200    stored, already stored (a duplicate), or an event type this receiver ignores
400    missing or malformed webhook headers, or a verified body that is not a Codat event
401    timestamp more than 5 minutes off, or a signature that does not match the secret
413    body larger than the limit
503    no usable secret yet, or the database failed or was too slow to store it (Codat retries)
=====  ==========================================================================================
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from airflow_provider_codat.errors import MalformedEventError, SecretUnavailableError
from airflow_provider_codat.webhooks.dedupe import RecentIds
from airflow_provider_codat.webhooks.deliveries import Delivery, delivery_of
from airflow_provider_codat.webhooks.events import event_type_of, is_change
from airflow_provider_codat.webhooks.rate_limit_events import RATE_LIMIT_EVENTS, feed_budget
from airflow_provider_codat.webhooks.secret import CachedVerifier
from airflow_provider_codat.webhooks.store import Stored, store_delivery

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 256 * 1024
TOLERANCE_SECONDS = 5 * 60
SECRET_LOOKUP_TIMEOUT = 5.0
# Codat waits 15 s for an answer; a store still running after this is answered 503 (its retry then finds the
# row if the store did commit after all, and writes nothing twice).
STORE_TIMEOUT = 10.0
# Svix message ids look like msg_2Xb...; anything printable and short is accepted, nothing else.
_WEBHOOK_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
_TIMESTAMP = re.compile(r"\d{1,12}")


class Drainer(Protocol):
    """What writes the stored deliveries' asset events: a :class:`~.drainer_process.DrainerProcess` in the
    API server, a :class:`~.drain.InboxDrainer` thread in tests and benchmarks."""

    def wake(self) -> None:
        """Drain soon: a delivery was stored (no blocking I/O: it is called on the answer's path)."""


@dataclass
class ReceiverParts:
    """What the app works with; tests and benchmarks pass their own.

    :param verifier: the signing secret's verifier, cached.
    :param seen: webhook ids this process stored recently.
    :param store: stores a delivery durably (blocking; run in a worker thread), default :func:`store_delivery`.
    :param drainer: woken when a delivery was stored, writes its asset events (``None``: off).
    :param max_body_bytes: larger bodies get 413.
    :param store_timeout: seconds a store may take before the answer is 503.
    """

    verifier: CachedVerifier
    seen: RecentIds
    store: Callable[[Delivery], Stored] = store_delivery
    drainer: Drainer | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    store_timeout: float = STORE_TIMEOUT


def _answer(status: int, message: str) -> JSONResponse:
    return JSONResponse({"status": status, "message": message}, status_code=status)


class _TooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused as soon as it passes ``limit`` bytes (declared or streamed)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise _TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


async def _verifier(parts: ReceiverParts) -> Webhook:
    """The cached verifier, or one looked up in a worker thread given at most a few seconds."""
    verifier = parts.verifier.cached()
    if verifier is not None:
        return verifier
    with anyio.fail_after(SECRET_LOOKUP_TIMEOUT):
        return await anyio.to_thread.run_sync(parts.verifier.get, abandon_on_cancel=True)


def create_receiver_app(parts: ReceiverParts, *, lifespan: Any = None) -> FastAPI:
    """The FastAPI app the plugin mounts at ``/codat``: one route, ``POST /webhooks``.

    :param parts: the verifier, store and id memory to use.
    :param lifespan: what to do as the API server starts and stops (Airflow runs its mounted apps' lifespans).
    """
    app = FastAPI(
        title="Codat webhooks",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        redirect_slashes=False,
        lifespan=lifespan,
    )
    app.state.parts = parts

    @app.post("/webhooks")
    async def receive(request: Request) -> JSONResponse:
        try:
            raw = await _read_body(request, parts.max_body_bytes)
        except _TooLarge:
            return _answer(413, f"body larger than {parts.max_body_bytes} bytes")
        webhook_id = request.headers.get("webhook-id", "")
        timestamp = request.headers.get("webhook-timestamp", "")
        signature = request.headers.get("webhook-signature", "")
        if not (webhook_id and timestamp and signature):
            return _answer(400, "webhook-id, webhook-timestamp and webhook-signature headers are required")
        if not _WEBHOOK_ID.fullmatch(webhook_id) or not _TIMESTAMP.fullmatch(timestamp):
            return _answer(400, "malformed webhook-id or webhook-timestamp header")
        if abs(time.time() - int(timestamp)) > TOLERANCE_SECONDS:
            return _answer(401, "webhook-timestamp is more than 5 minutes off")
        try:
            verifier = await _verifier(parts)
        except SecretUnavailableError as exc:
            log.error("Codat webhook refused: %s", exc)
            return _answer(503, "the receiver has no signing secret configured")
        except TimeoutError:
            log.error(
                "Codat webhook refused: looking up the signing secret took over %ss", SECRET_LOOKUP_TIMEOUT
            )
            return _answer(503, "the signing secret could not be read in time")
        try:
            text = raw.decode("utf-8")
            verifier.verify(
                text,
                {"webhook-id": webhook_id, "webhook-timestamp": timestamp, "webhook-signature": signature},
                json_parse=False,
            )
        except (WebhookVerificationError, UnicodeDecodeError, ValueError):
            # ValueError covers what the library lets through on junk: a part without "," or bad base64.
            return _answer(401, "signature does not match")
        return await _accept(parts, webhook_id, text)

    return app


async def _accept(parts: ReceiverParts, webhook_id: str, text: str) -> JSONResponse:
    """Parse a verified body and store it before answering; repeats of stored ids cost no database call."""
    try:
        body = json.loads(text)
        event_type = event_type_of(body)
        delivery = delivery_of(body, event_type, webhook_id)
    except (ValueError, MalformedEventError) as exc:
        reason = str(exc) if isinstance(exc, MalformedEventError) else "the body is not JSON"
        return _answer(400, reason)
    if delivery is None:
        return JSONResponse({"status": 200, "message": "event type ignored"})
    if webhook_id in parts.seen:
        return JSONResponse({"status": 200, "message": "duplicate delivery ignored"})
    try:
        with anyio.fail_after(parts.store_timeout):
            stored = await anyio.to_thread.run_sync(parts.store, delivery, abandon_on_cancel=True)
    except TimeoutError:
        log.error("Codat webhook %s: storing it took over %ss; answered 503", webhook_id, parts.store_timeout)
        return _answer(503, "busy: deliver again later")
    except Exception:
        log.exception("Codat webhook %s: storing it failed; answered 503 so that Codat retries", webhook_id)
        return _answer(503, "could not store the delivery: deliver again later")
    parts.seen.add(webhook_id)
    if stored.duplicate:
        return JSONResponse({"status": 200, "message": "duplicate delivery ignored"})
    if parts.drainer is not None:
        parts.drainer.wake()
    if delivery.event_type in RATE_LIMIT_EVENTS:
        await anyio.to_thread.run_sync(feed_budget, delivery.notices[0].extra, parts.verifier.conn_id)
    changes = sum(1 for notice in delivery.notices if is_change(notice.extra))
    return JSONResponse({"status": 200, "message": "accepted", "asset_events": changes})
