"""How an HTTP error response (or no response) becomes a :class:`~airflow_provider_codat.errors.CodatAPIError`.

The error classes live in :mod:`airflow_provider_codat.errors`; they are re-exported here for existing imports.

Every message names what went wrong and what to do about it. None of them ever contains the API key or the
``Authorization`` value: messages are built from the status, Codat's ``error`` text, the method and the URL path
only (never the request's headers, never the query string), and everything taken from the answer (body, reason,
headers) is scrubbed first (:mod:`~airflow_provider_codat.hooks.redact`), since a proxy may echo the header.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from airflow_provider_codat.errors import (
    CodatAPIError,
    CodatDatasetInProgressError,
    CodatError,
    CodatPagingError,
    CodatValidationError,
)

__all__ = [
    "CodatAPIError",
    "CodatDatasetInProgressError",
    "CodatError",
    "CodatPagingError",
    "CodatValidationError",
    "error_from_response",
    "error_from_transport",
]

from airflow_provider_codat.hooks.redact import Scrubber, scrub

IN_PROGRESS_PATTERN = re.compile(
    r"DatasetAlreadyInProgressException: Cannot queue (?P<data_type>\S+) sync for (?P<company_id>\S+) "
    r"as previous sync (?P<dataset_id>[^\s.,;]+)(?:[.,;])? is still in progress"
)

_SNIPPET = 160
# Codat's error texts are a sentence or two; anything longer is cut so that no message grows without bound.
_MAX_ERROR = 500


def _parse_body(response: httpx.Response, redact: Scrubber) -> tuple[dict[str, Any] | None, str]:
    """Return (JSON object or None, a short scrubbed one-line snippet of the body for messages)."""
    text = response.text or ""
    try:
        body = json.loads(text) if text else None
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = None
    # Scrubbed before it is cut: a cut could split an echoed key and leave half of it behind.
    collapsed = re.sub(r"<[^>]*>", " ", redact(text))
    return body, _short(" ".join(collapsed.split()), _SNIPPET)


def _short(text: str, limit: int = 100) -> str:
    """``text`` cut to ``limit`` characters: server text never makes a message grow without bound."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _advice(status: int, conn_id: str, retries: int) -> str:
    if status == 400:
        return "Codat rejected the request as malformed: check the query and orderBy values."
    if status == 401:
        return f"Codat rejected the API key: check the API key (password) in connection `{conn_id}`."
    if status == 402:
        return (
            "Codat refused the request for the plan or quota of this account (Payment Required): check the "
            "plan and usage in the Codat portal."
        )
    if status == 403:
        return (
            f"The API key in connection `{conn_id}` is not allowed to access this resource: check the key's "
            "permissions in the Codat portal."
        )
    if status == 404:
        return (
            "Not found: the company (or connection, or dataset) does not exist, or the data type is not "
            "supported by the company's accounting platform. Check the ids and the data type."
        )
    if status == 409:
        return (
            "The data type has not been synced yet for this company (or is still syncing): queue a refresh "
            "first (data/queue or CodatQueueDataTypesOperator) and wait for it to complete."
        )
    if status == 429:
        return (
            f"Codat's rate limit was still exceeded after {retries} retries: lower the request rate or "
            "wait for the quota to reset (daily quotas reset at 00:00 UTC)."
        )
    if status == 408 or status >= 500:
        return f"Codat did not answer successfully after {retries} retries: try again later."
    return "Codat refused the request."


def error_from_response(
    response: httpx.Response,
    *,
    conn_id: str,
    retries: int = 0,
    retry_after: str | None = None,
    redact: Scrubber = scrub,
) -> CodatAPIError:
    """Build the exception for an error response (the HTTP status is trusted over the body's).

    :param response: the error response.
    :param conn_id: the Airflow connection id, named in the advice for key problems.
    :param retries: how many retries were made before giving up.
    :param retry_after: the last ``Retry-After`` header, quoted for a 429.
    :param redact: scrubs server text; the hook passes its key's ``Redactor.text`` (the default knows no key
        and scrubs credential-shaped values only).
    """
    request = response.request
    method, path = request.method, request.url.path
    status = response.status_code
    body, snippet = _parse_body(response, redact)
    if body is not None:
        error = body.get("error")
        error = redact(str(error)) if error is not None else None
        correlation_id = body.get("correlationId")
        correlation_id = str(correlation_id) if correlation_id else None
    else:
        error, correlation_id = (snippet or None), None
    if correlation_id is None:
        correlation_id = response.headers.get("x-correlation-id") or response.headers.get("correlation-id")
    correlation_id = _short(redact(correlation_id)) if correlation_id else None
    retry_after = _short(redact(retry_after)) if retry_after else None

    match = IN_PROGRESS_PATTERN.search(error or "") if 400 <= status < 500 else None
    error = _short(error, _MAX_ERROR) if error else error
    content_type = _short(redact(_content_type(response)))

    details = []
    if error:
        kind = "Codat says" if body is not None else f"non-JSON body ({content_type})"
        details.append(f"{kind}: {error}")
    elif body is None:
        details.append(f"empty or non-JSON body ({content_type})")
    if status == 429 and retry_after:
        details.append(f"Retry-After: {retry_after}")
    if correlation_id:
        details.append(f"correlation id {correlation_id}")
    reason = _short(redact(response.reason_phrase or ""))
    message = f"Codat API error {status} {reason} for {method} {path}. {_advice(status, conn_id, retries)}"
    if details:
        message += " (" + "; ".join(details) + ")"

    if match:
        data_type, dataset_id = _short(match.group("data_type")), _short(match.group("dataset_id"))
        message = (
            f"Codat did not queue a sync of {data_type} for company {_short(match.group('company_id'))}: sync "
            f"{dataset_id} of that data type is still in progress. Wait for dataset {dataset_id} (or join "
            f"it) instead of queueing another. ({status} for {method} {path}"
            + (f"; correlation id {correlation_id}" if correlation_id else "")
            + ")"
        )
        return CodatDatasetInProgressError(
            message,
            status_code=status,
            error=error,
            correlation_id=correlation_id,
            method=method,
            path=path,
            data_type=data_type,
            dataset_id=dataset_id,
        )
    return CodatAPIError(
        message, status_code=status, error=error, correlation_id=correlation_id, method=method, path=path
    )


def error_from_transport(exc: Exception, *, method: str, path: str, retries: int) -> CodatAPIError:
    """Build the exception for a request that got no response (connection refused, timeout, dropped)."""
    kind = type(exc).__name__
    message = (
        f"Could not get an answer from Codat for {method} {path} after {retries} retries ({kind}). Check "
        "the connection's base URL and the network, or raise the `timeout` extra if requests time out."
    )
    return CodatAPIError(message, status_code=None, error=kind, method=method, path=path)


def _content_type(response: httpx.Response) -> str:
    return response.headers.get("content-type", "no content type").split(";")[0].strip()
