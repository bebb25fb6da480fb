"""Everything the provider raises on purpose: :class:`CodatError` and its kinds, and what counts as transient.

* :class:`CodatAPIError`: Codat answered with an error, answered something the API does not document, or could not
  be reached; :class:`CodatDatasetInProgressError`, :class:`CodatPagingError` and
  :class:`CodatQuotaExhaustedError` (the daily request quota is spent: no request was sent) are special cases.
* :class:`CodatValidationError`: an argument refused before any request (also a ``ValueError``).
* :class:`CodatSyncFailedError`: an awaited sync ended in a failed status.
* :class:`CodatSyncTimeoutError`: a wait passed its deadline (also an ``AirflowSensorTimeout``, so that sensors
  honour ``soft_fail`` and the task is not retried into the same wait).
* :class:`CodatExtractError`: an extract could not produce a consistent output and committed nothing;
  :class:`CodatDataNotSyncedError` (nothing synced yet to read), :class:`StateError` (an unreadable
  ``_state.json``) and :class:`WatermarkError` (a ``modifiedDate`` that is not a date-time) are its kinds.
* :class:`CodatCompanySyncFailedError`: some data types of a company sync did not land (the others did).
* :class:`MalformedEventError` and :class:`SecretUnavailableError`: a webhook delivery the receiver refuses.

This module sits at the bottom of the import graph: it imports nothing from the provider but
:mod:`~airflow_provider_codat.version_compat`. Messages never carry the API key, its encoded header or unbounded
input.
"""

from __future__ import annotations

from typing import Any

import httpx
from airflow.sdk.exceptions import AirflowException

from airflow_provider_codat.version_compat import AirflowSensorTimeout

# Statuses worth another attempt later: the same request may well succeed.
TRANSIENT_STATUSES = frozenset({408, 429})


class CodatError(AirflowException):
    """The base of every error the provider raises on purpose."""


class CodatAPIError(CodatError):
    """Codat answered with an error, answered something malformed, or could not be reached after the retries.

    :param message: what happened and what to do, for a person.
    :param status_code: the HTTP status of the answer (``None`` when no answer came back at all).
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

    @property
    def transient(self) -> bool:
        """No answer, 408, 429 or 5xx: asking again later may succeed."""
        status = self.status_code
        return status is None or status in TRANSIENT_STATUSES or status >= 500

    def __reduce__(self):
        state = {
            "status_code": self.status_code,
            "error": self.error,
            "correlation_id": self.correlation_id,
            "method": self.method,
            "path": self.path,
            **self._extra_state(),
        }
        return (_rebuild, (type(self), self.message, state))

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


class CodatPagingError(CodatAPIError):
    """A paged list that does not advance (the same page again, a link backwards): stop instead of spinning."""

    @property
    def transient(self) -> bool:
        return False


class CodatQuotaExhaustedError(CodatAPIError):
    """Codat's daily request quota is spent (or down to the reserve kept for waits): nothing was sent.

    :param resets_at: epoch seconds when Codat resets the quota (``X-Rate-Limit-Reset``); ``None`` if unknown.
    """

    def __init__(self, message: str, *, resets_at: float | None = None, **kw):
        kw.setdefault("status_code", 429)
        super().__init__(message, **kw)
        self.resets_at = resets_at

    def _extra_state(self) -> dict[str, Any]:
        return {"resets_at": self.resets_at}


class CodatValidationError(CodatError, ValueError):
    """An argument that would make an unsafe or invalid request; raised before any request is sent."""


class UnknownDataTypeError(CodatValidationError):
    """A data type key that is not in the catalogue."""


class CodatSyncFailedError(CodatError):
    """One or more awaited syncs ended in a failed status; the message lists each with Codat's errorMessage.

    :param message: the message.
    :param outcomes: data type -> outcome (``{status, dataset_id, last_successful_sync, error_message}``) of
        the failed types.
    """

    def __init__(self, message: str, outcomes: dict[str, dict] | None = None) -> None:
        super().__init__(message)
        self.outcomes = dict(outcomes or {})

    def __reduce__(self):
        return (type(self), (str(self), self.outcomes))


class CodatSyncTimeoutError(CodatError, AirflowSensorTimeout):
    """A wait for Codat syncs passed its deadline; the message names the types still running."""


class CodatExtractError(CodatError):
    """The extract could not produce a consistent output; nothing was committed."""


class CodatDataNotSyncedError(CodatExtractError):
    """The data type has no completed sync for the company yet: there is nothing to read, and that is not 'empty'."""


class StateError(CodatExtractError, ValueError):
    """A state file (``_state.json``) that cannot be read back; it is never silently reset."""


class WatermarkError(CodatExtractError, ValueError):
    """A ``modifiedDate`` that is not an ISO 8601 date-time."""


class CodatTableError(CodatError):
    """A table merge failed (a value that does not fit its column, an unreadable landing): nothing committed."""


class CodatCompanySyncFailedError(CodatError):
    """Some data types of the company (or companies) did not land; the others did and are committed."""


class MalformedEventError(CodatValidationError):
    """A webhook body that is not a Codat event the receiver understands (the message never quotes the body)."""


class SecretUnavailableError(CodatError):
    """No usable webhook signing secret (the message says what to fix, never what the value is)."""


def is_transient(exc: BaseException) -> bool:
    """The one rule for "worth trying again later": no answer (a transport error), 408, 429 or 5xx."""
    if isinstance(exc, httpx.TransportError):
        return True
    return isinstance(exc, CodatAPIError) and exc.transient
