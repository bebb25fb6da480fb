"""The ``echo_auth`` fault's answer: an error from a gateway that repeats the request's ``Authorization`` header.

WAFs, API gateways and debug proxies do this, in a JSON body or an HTML page, and not always verbatim: the
``echo`` spellings below are the ones a client's scrubbing has to survive.
"""

from __future__ import annotations

import base64
import binascii
import html
import json
from urllib.parse import quote

from airflow_provider_codat.simulator.error_bodies import error_body

BODY_FORMATS = ("json", "html")
ECHOES = ("header", "lower", "urlencoded", "unpadded", "folded", "key", "entities")


def echoed(authorization: str, echo: str) -> str:
    """The header value as the gateway repeats it.

    :param authorization: the request's ``Authorization`` value (``Basic <base64 of the key>``).
    :param echo: ``header`` (as sent), ``lower`` (``basic …``), ``urlencoded``, ``unpadded`` (base64 without
        ``=``), ``folded`` (split over lines every 8 characters), ``key`` (the decoded bare key), or ``entities``
        (the base64 as HTML character references).
    """
    scheme, _, encoded = authorization.partition(" ")
    if echo == "lower":
        return f"{scheme.lower()} {encoded}"
    if echo == "urlencoded":
        return quote(authorization, safe="")
    if echo == "unpadded":
        return f"{scheme} {encoded.rstrip('=')}"
    if echo == "folded":
        return scheme + "".join(f"\r\n {encoded[i : i + 8]}" for i in range(0, len(encoded), 8))
    if echo == "key":
        try:
            return base64.b64decode(encoded).decode()
        except (binascii.Error, UnicodeDecodeError):
            return encoded
    if echo == "entities":
        return f"{scheme} " + "".join(f"&#{ord(c)};" for c in encoded)
    return authorization


def echo_answer(status: int, authorization: str, echo: str, body_format: str) -> tuple[bytes, bytes]:
    """``(payload, content type)`` of the gateway's error answer.

    :param status: the HTTP status.
    :param authorization: the request's ``Authorization`` value (may be empty).
    :param echo: how the value is spelled (see :func:`echoed`).
    :param body_format: ``json`` or ``html``.
    """
    value = echoed(authorization, echo) if authorization else ""
    if body_format == "html":
        # ``entities`` is already markup; every other spelling is escaped as a real page would.
        shown = value if echo == "entities" else html.escape(value)
        page = (
            f"<html><head><title>{status} Request blocked</title></head><body><h1>{status} Request blocked</h1>"
            "<p>The gateway refused the request. Request headers:</p><table>"
            f"<tr><td>Host</td><td>api.codat.io</td></tr><tr><td>Authorization</td><td>{shown}</td></tr>"
            "</table></body></html>"
        )
        return page.encode(), b"text/html"
    body = error_body(status, f"Request blocked by the gateway. Authorization: {value}", service="Gateway")
    body["request"] = {"headers": {"authorization": value, "user-agent": "client"}}
    return json.dumps(body).encode(), b"application/json"
