"""``POST /webhooks``: take a signed Codat delivery, check it, and queue the asset events it stands for.

The order matters: the size is checked before the body is read in full, the headers and the timestamp before the
signature, the signature (over the raw bytes) before anything is parsed, and the ``webhook-id`` is remembered
only once the delivery is verified (a forged id can not block a real message). Answers are short and fixed:
they never repeat what was sent.

=====  ==========================================================================================
200    accepted (asset events queued), a duplicate, or an event type this receiver ignores
400    missing or malformed webhook headers, or a verified body that is not a Codat event
401    timestamp more than 5 minutes off, or a signature that does not match the secret
413    body larger than the limit
503    no usable secret configured yet, or the hand-off queue is full (Codat retries later)
=====  ==========================================================================================
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from airflow_provider_codat.errors import MalformedEventError, SecretUnavailableError
from airflow_provider_codat.webhooks.dedupe import RecentIds
from airflow_provider_codat.webhooks.events import (
    READ_COMPLETED_EVENTS,
    change_notices,
    event_type_of,
)
from airflow_provider_codat.webhooks.publisher import AssetEventPublisher
from airflow_provider_codat.webhooks.secret import CachedVerifier

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 256 * 1024
TOLERANCE_SECONDS = 5 * 60
SECRET_LOOKUP_TIMEOUT = 5.0
# Svix message ids look like msg_2Xb...; anything printable and short is accepted, nothing else.
_WEBHOOK_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
_TIMESTAMP = re.compile(r"\d{1,12}")


@dataclass
class ReceiverParts:
    """What the app works with; tests and benchmarks pass their own.

    :param verifier: the signing secret's verifier, cached.
    :param publisher: where accepted notices go.
    :param seen: recent webhook ids.
    :param max_body_bytes: larger bodies get 413.
    """

    verifier: CachedVerifier
    publisher: AssetEventPublisher
    seen: RecentIds
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES


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


def create_receiver_app(parts: ReceiverParts) -> FastAPI:
    """The FastAPI app the plugin mounts at ``/codat``: one route, ``POST /webhooks``.

    :param parts: the verifier, publisher and id memory to use.
    """
    app = FastAPI(
        title="Codat webhooks", docs_url=None, redoc_url=None, openapi_url=None, redirect_slashes=False
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
        return _accept(parts, webhook_id, text)

    return app


def _accept(parts: ReceiverParts, webhook_id: str, text: str) -> JSONResponse:
    """Parse a verified body, drop duplicates, and queue its asset events."""
    try:
        body = json.loads(text)
        event_type = event_type_of(body)
        notices = change_notices(body, webhook_id) if event_type in READ_COMPLETED_EVENTS else None
    except (ValueError, MalformedEventError) as exc:
        reason = str(exc) if isinstance(exc, MalformedEventError) else "the body is not JSON"
        return _answer(400, reason)
    if notices is None:
        return JSONResponse({"status": 200, "message": "event type ignored"})
    if not parts.seen.add(webhook_id):
        return JSONResponse({"status": 200, "message": "duplicate delivery ignored"})
    if notices and not parts.publisher.submit(webhook_id, notices):
        parts.seen.discard(webhook_id)
        return _answer(503, "busy: deliver again later")
    return JSONResponse({"status": 200, "message": "accepted", "asset_events": len(notices)})
