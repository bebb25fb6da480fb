"""How an HTTP error response (or no response) becomes a :class:`~airflow_provider_codat.errors.CodatAPIError`.

The error classes live in :mod:`airflow_provider_codat.errors`; this module only builds them.

Every message names what went wrong and what to do about it. None of them ever contains the API key or the
``Authorization`` value: messages are built from the status, Codat's ``error`` text, the method and the URL path
only (never the request's headers, never the query string), and everything taken from the answer (body, reason,
headers) is scrubbed first (:mod:`~airflow_provider_codat.hooks.redact`), since a proxy may echo the header.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import httpx

from airflow_provider_codat.errors import CodatAPIError, CodatDatasetInProgressError
from airflow_provider_codat.hooks.redact import Scrubber, scrub

IN_PROGRESS_PATTERN = re.compile(
    r"DatasetAlreadyInProgressException: Cannot queue (?P<data_type>\S+) sync for (?P<company_id>\S+) "
    r"as previous sync (?P<dataset_id>[^\s.,;]+)(?:[.,;])? is still in progress"
)

_SNIPPET = 160
# Codat's error texts are a sentence or two; anything longer is cut so that no message grows without bound.
_MAX_ERROR = 500


@dataclass(frozen=True)
class _Answer:
    """What an error response said, scrubbed and cut to size: the error's fields and the parts of its message.

    :param json_body: the body was a JSON object (``error`` is Codat's text, else a snippet of the body).
    :param in_progress: the match of Codat's in-progress text (a 4xx only), else ``None``.
    """

    status: int
    method: str
    path: str
    json_body: bool
    error: str | None
    correlation_id: str | None
    content_type: str
    reason: str
    in_progress: re.Match[str] | None

    def fields(self) -> dict[str, Any]:
        """The keyword arguments every :class:`CodatAPIError` built from this answer carries."""
        return {
            "status_code": self.status,
            "error": self.error,
            "correlation_id": self.correlation_id,
            "method": self.method,
            "path": self.path,
        }


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
    answer = _read_answer(response, redact)
    if answer.in_progress:
        return _in_progress_error(answer)
    message = (
        f"Codat API error {answer.status} {answer.reason} for {answer.method} {answer.path}. "
        f"{_advice(answer.status, conn_id, retries)}"
    )
    details = _details(answer, _short(redact(retry_after)) if retry_after else None)
    if details:
        message += " (" + "; ".join(details) + ")"
    return CodatAPIError(message, **answer.fields())


def error_from_transport(exc: Exception, *, method: str, path: str, retries: int) -> CodatAPIError:
    """Build the exception for a request that got no response (connection refused, timeout, dropped)."""
    kind = type(exc).__name__
    message = (
        f"Could not get an answer from Codat for {method} {path} after {retries} retries ({kind}). Check "
        "the connection's base URL and the network, or raise the `timeout` extra if requests time out."
    )
    return CodatAPIError(message, status_code=None, error=kind, method=method, path=path)


def restated(exc: CodatAPIError, message: str) -> CodatAPIError:
    """A :class:`CodatAPIError` with the fields of ``exc`` (status, Codat's text, correlation id, method,
    path) and another message, for a caller that knows more about what the failure means.

    :param exc: the error as the request loop raised it.
    :param message: the whole new message.
    """
    return CodatAPIError(
        message,
        status_code=exc.status_code,
        error=exc.error,
        correlation_id=exc.correlation_id,
        method=exc.method,
        path=exc.path,
    )


def _read_answer(response: httpx.Response, redact: Scrubber) -> _Answer:
    """Read what an error response said: Codat's error text and correlation id, scrubbed and cut."""
    status = response.status_code
    body, snippet = _parse_body(response, redact)
    error, correlation_id = _codat_error(body, snippet, redact)
    # Looked for before the text is cut: the dataset id may sit past the cut.
    match = IN_PROGRESS_PATTERN.search(error or "") if 400 <= status < 500 else None
    return _Answer(
        status=status,
        method=response.request.method,
        path=response.request.url.path,
        json_body=body is not None,
        error=_short(error, _MAX_ERROR) if error else error,
        correlation_id=_correlation_id(correlation_id, response, redact),
        content_type=_short(redact(_content_type(response))),
        reason=_short(redact(response.reason_phrase or "")),
        in_progress=match,
    )


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


def _codat_error(
    body: dict[str, Any] | None, snippet: str, redact: Scrubber
) -> tuple[str | None, str | None]:
    """Codat's ``error`` text (scrubbed) and ``correlationId`` from a JSON body; for any other body, the
    body's snippet and no correlation id."""
    if body is None:
        return (snippet or None), None
    error = body.get("error")
    correlation_id = body.get("correlationId")
    return (redact(str(error)) if error is not None else None), (
        str(correlation_id) if correlation_id else None
    )


def _correlation_id(from_body: str | None, response: httpx.Response, redact: Scrubber) -> str | None:
    """The body's correlation id, else the one in the headers; scrubbed and cut."""
    found = from_body or response.headers.get("x-correlation-id") or response.headers.get("correlation-id")
    return _short(redact(found)) if found else None


def _details(answer: _Answer, retry_after: str | None) -> list[str]:
    """The bracketed part of the message: what Codat said, ``Retry-After`` for a 429, the correlation id."""
    details = []
    if answer.error:
        kind = "Codat says" if answer.json_body else f"non-JSON body ({answer.content_type})"
        details.append(f"{kind}: {answer.error}")
    elif not answer.json_body:
        details.append(f"empty or non-JSON body ({answer.content_type})")
    if answer.status == 429 and retry_after:
        details.append(f"Retry-After: {retry_after}")
    if answer.correlation_id:
        details.append(f"correlation id {answer.correlation_id}")
    return details


def _in_progress_error(answer: _Answer) -> CodatDatasetInProgressError:
    """Codat refused to queue a sync because one of the type is running: name that sync (wait for it)."""
    match = answer.in_progress
    data_type, dataset_id = _short(match.group("data_type")), _short(match.group("dataset_id"))
    message = (
        f"Codat did not queue a sync of {data_type} for company {_short(match.group('company_id'))}: sync "
        f"{dataset_id} of that data type is still in progress. Wait for dataset {dataset_id} (or join "
        f"it) instead of queueing another. ({answer.status} for {answer.method} {answer.path}"
        + (f"; correlation id {answer.correlation_id}" if answer.correlation_id else "")
        + ")"
    )
    return CodatDatasetInProgressError(message, data_type=data_type, dataset_id=dataset_id, **answer.fields())


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


def _content_type(response: httpx.Response) -> str:
    return response.headers.get("content-type", "no content type").split(";")[0].strip()
