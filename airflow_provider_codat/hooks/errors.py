"""How an HTTP error response (or no response) becomes a :class:`~airflow_provider_codat.errors.CodatAPIError`.

The error classes live in :mod:`airflow_provider_codat.errors`; they are re-exported here for existing imports.

Every message names what went wrong and what to do about it. None of them ever contains the API key or the
``Authorization`` value: messages are built from the status, Codat's ``error`` text, the method and the URL path
only (never headers, never the query string).
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

IN_PROGRESS_PATTERN = re.compile(
    r"DatasetAlreadyInProgressException: Cannot queue (?P<data_type>\S+) sync for (?P<company_id>\S+) "
    r"as previous sync (?P<dataset_id>[^\s.,;]+)(?:[.,;])? is still in progress"
)

_SNIPPET = 160


def _parse_body(response: httpx.Response) -> tuple[dict[str, Any] | None, str]:
    """Return (JSON object or None, a short one-line snippet of the body for messages)."""
    text = response.text or ""
    try:
        body = json.loads(text) if text else None
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = None
    collapsed = re.sub(r"<[^>]*>", " ", text)
    collapsed = " ".join(collapsed.split())
    if len(collapsed) > _SNIPPET:
        collapsed = collapsed[: _SNIPPET - 1] + "…"
    return body, collapsed


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
    response: httpx.Response, *, conn_id: str, retries: int = 0, retry_after: str | None = None
) -> CodatAPIError:
    """Build the exception for an error response (the HTTP status is trusted over the body's).

    :param response: the error response.
    :param conn_id: the Airflow connection id, named in the advice for key problems.
    :param retries: how many retries were made before giving up.
    :param retry_after: the last ``Retry-After`` header, quoted for a 429.
    """
    request = response.request
    method, path = request.method, request.url.path
    status = response.status_code
    body, snippet = _parse_body(response)
    if body is not None:
        error = body.get("error")
        error = str(error) if error is not None else None
        correlation_id = body.get("correlationId")
        correlation_id = str(correlation_id) if correlation_id else None
    else:
        error, correlation_id = (snippet or None), None
    if correlation_id is None:
        correlation_id = response.headers.get("x-correlation-id") or response.headers.get("correlation-id")

    details = []
    if error:
        kind = "Codat says" if body is not None else f"non-JSON body ({_content_type(response)})"
        details.append(f"{kind}: {error}")
    elif body is None:
        details.append(f"empty or non-JSON body ({_content_type(response)})")
    if status == 429 and retry_after:
        details.append(f"Retry-After: {retry_after}")
    if correlation_id:
        details.append(f"correlation id {correlation_id}")
    reason = response.reason_phrase or ""
    message = f"Codat API error {status} {reason} for {method} {path}. {_advice(status, conn_id, retries)}"
    if details:
        message += " (" + "; ".join(details) + ")"

    match = IN_PROGRESS_PATTERN.search(error or "") if 400 <= status < 500 else None
    if match:
        data_type, dataset_id = match.group("data_type"), match.group("dataset_id")
        message = (
            f"Codat did not queue a sync of {data_type} for company {match.group('company_id')}: sync "
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
