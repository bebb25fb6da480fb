"""The endpoint's signing secret: the ``webhook_secret`` extra of the Codat connection, looked up rarely.

A lookup may reach Airflow's metadata database or a secrets backend, so the verifier built from it is kept for
``ttl`` seconds: a delivery normally costs no lookup at all, and a rotated secret is picked up within ``ttl``.
The secret itself is never logged nor put in an exception.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from standardwebhooks.webhooks import Webhook

from airflow_provider_codat.defaults import DEFAULT_CONN_ID
from airflow_provider_codat.errors import SecretUnavailableError
from airflow_provider_codat.webhooks.expiry import Expiring

SECRET_EXTRA = "webhook_secret"
DEFAULT_TTL_SECONDS = 60.0


def connection_secret(conn_id: str) -> str | None:
    """Read ``webhook_secret`` from the Airflow connection ``conn_id`` (environment, secrets backend or
    database, as Airflow resolves it); ``None`` when the connection or the extra is missing."""
    from airflow.exceptions import AirflowNotFoundException
    from airflow.models.connection import Connection

    try:
        connection = Connection.get_connection_from_secrets(conn_id)
    except AirflowNotFoundException:
        return None
    value = connection.extra_dejson.get(SECRET_EXTRA)
    return value if isinstance(value, str) and value.strip() else None


class CachedVerifier(Expiring):
    """A :class:`standardwebhooks.Webhook` for the current secret, rebuilt at most every ``ttl`` seconds.

    :param conn_id: the Codat connection holding the secret.
    :param lookup: reads the secret for a connection id (default :func:`connection_secret`).
    :param ttl: seconds a looked-up secret is used before it is read again.
    :param clock: monotonic seconds (for tests).
    """

    def __init__(
        self,
        conn_id: str = DEFAULT_CONN_ID,
        *,
        lookup: Callable[[str], str | None] = connection_secret,
        ttl: float = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(ttl, clock)
        self.conn_id = conn_id
        self._lookup = lookup
        self._verifier: Webhook | None = None
        self._read_at: float | None = None

    def cached(self) -> Webhook | None:
        """The verifier if it was built less than ``ttl`` seconds ago (no I/O)."""
        if self._fresh(self._read_at):
            return self._verifier
        return None

    def get(self) -> Webhook:
        """The verifier, looking the secret up when the cached one is older than ``ttl`` (may block on I/O).

        :raises SecretUnavailableError: the connection has no ``webhook_secret`` or it is not a ``whsec_`` secret.
        """
        with self._lock:
            verifier = self.cached()
            if verifier is not None:
                return verifier
            secret = self._lookup(self.conn_id)
            if secret is None:
                raise SecretUnavailableError(
                    f"The Airflow connection {self.conn_id!r} has no {SECRET_EXTRA!r} extra: paste the endpoint's "
                    "signing secret (whsec_...) from Codat's portal into it."
                )
            try:
                verifier = Webhook(secret.strip())
            except Exception:
                raise SecretUnavailableError(
                    f"The {SECRET_EXTRA!r} extra of connection {self.conn_id!r} is not a Codat signing secret: "
                    "copy it again from Codat's portal (it starts with whsec_)."
                ) from None
            self._verifier, self._read_at = verifier, self._clock()
            return verifier
