"""The errors the Codat hook raises, and how an HTTP error response becomes one.

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
from airflow.sdk.exceptions import AirflowException

from airflow_provider_codat.hooks.redact import Scrubber, scrub

IN_PROGRESS_PATTERN = re.compile(
    r"DatasetAlreadyInProgressException: Cannot queue (?P<data_type>\S+) sync for (?P<company_id>\S+) "
    r"as previous sync (?P<dataset_id>[^\s.,;]+)(?:[.,;])? is still in progress"
)

_SNIPPET = 160
# Codat's error texts are a sentence or two; anything longer is cut so that no message grows without bound.
_MAX_ERROR = 500


class CodatValidationError(ValueError):
    """An argument that would make an unsafe or invalid request; raised before any request is sent."""


class CodatPagingError(AirflowException):
    """The server keeps answering a page the loop has already read: stop instead of spinning."""


class CodatAPIError(AirflowException):
    """Codat answered with an error, or could not be reached after the retries.

    :param message: what happened and what to do, for a person.
    :param status_code: the HTTP status (``None`` when no response came back at all).
    :param error: Codat's ``error`` text (or a snippet of a non-JSON body).
    :param correlation_id: Codat's ``correlationId``, to quote to Codat support.
    :param method: the HTTP method of the request.
    :param path: the URL path of the request (no query string, no host).
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error: str | None = None,
        correlation_id: str | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.error = error
        self.correlation_id = correlation_id
        self.method = method
        self.path = path

    def __reduce__(self):
        return (
            _rebuild,
            (
                type(self),
                self.message,
                {
                    "status_code": self.status_code,
                    "error": self.error,
                    "correlation_id": self.correlation_id,
                    "method": self.method,
                    "path": self.path,
                    **self._extra_state(),
                },
            ),
        )

    def _extra_state(self) -> dict[str, Any]:
        return {}


def _rebuild(cls, message, state):
    return cls(message, **state)


class CodatDatasetInProgressError(CodatAPIError):
    """Codat refused to queue a sync because a sync of the same data type is still running.

    Codat does not document the status of this error (400 and 409 are both seen); it is recognised by its
    text under any 4xx.

    :param data_type: the data type whose sync is running.
    :param dataset_id: the id of the running sync (a PullOperation id): wait for that one.
    """

    def __init__(self, message: str, *, data_type: str | None = None, dataset_id: str | None = None, **kw):
        super().__init__(message, **kw)
        self.data_type = data_type
        self.dataset_id = dataset_id

    def _extra_state(self) -> dict[str, Any]:
        return {"data_type": self.data_type, "dataset_id": self.dataset_id}


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
