"""What the request budget reads from the Codat connection: the rates, the shared store and the reserve.

Extras of the ``codat`` connection (all optional):

* ``requests_per_minute`` (default 900): requests in any 60 seconds, over every process sharing the store.
  Codat may block an IP address past 1,000 a minute; 900 leaves room for clocks and other clients.
* ``concurrent_requests_per_company`` (default 10, Codat's own limit): requests in flight for one company.
* ``request_budget_store``: where the budget is kept; else the ``CODAT_REQUEST_BUDGET_STORE`` environment
  variable; else a SQLite file in ``$AIRFLOW_HOME`` (every process of one machine).
  ``sqlite:////path/file.sqlite``, ``redis://host:6379/0`` (e.g. the Celery broker's Redis), or
  ``memory`` (this process only).
* ``request_budget_key`` (default the API's host, e.g. ``api.codat.io``): connections, and deployments, with the
  same key and store share one budget.
* ``quota_reserve`` (default 2 % of the daily quota, at least 100): requests of the daily quota kept for waits
  and reads already under way; no new read or refresh starts below it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_codat.errors import CodatValidationError
from airflow_provider_codat.safe_repr import shorten

log = logging.getLogger(__name__)

STORE_ENV = "CODAT_REQUEST_BUDGET_STORE"
DEFAULT_REQUESTS_PER_MINUTE = 900
CODAT_IP_LIMIT_PER_MINUTE = 1000
DEFAULT_CONCURRENT_PER_COMPANY = 10
STORE_SCHEMES = ("sqlite", "redis", "rediss", "memory")


@dataclass(frozen=True)
class BudgetSettings:
    """The budget one connection spends from.

    :param requests_per_minute: requests admitted in any 60 seconds.
    :param concurrent_per_company: requests in flight at once for one company.
    :param store: where the budget is kept (a URL: ``sqlite:///...``, ``redis://...``, ``memory``).
    :param key: what names this budget in the store.
    :param quota_reserve: requests kept back from the daily quota; ``None``: 2 % of it, at least 100.
    """

    requests_per_minute: int = DEFAULT_REQUESTS_PER_MINUTE
    concurrent_per_company: int = DEFAULT_CONCURRENT_PER_COMPANY
    store: str = "memory"
    key: str = "api.codat.io"
    quota_reserve: int | None = None

    def reserve_for(self, daily_limit: int | None) -> int:
        """Requests kept back from a daily quota of ``daily_limit``."""
        if self.quota_reserve is not None:
            return self.quota_reserve
        return max(100, (daily_limit or 0) // 50)


def default_store() -> str:
    """``CODAT_REQUEST_BUDGET_STORE``, else a SQLite file in ``$AIRFLOW_HOME`` (``~/airflow``)."""
    configured = os.environ.get(STORE_ENV, "").strip()
    if configured:
        return configured
    home = Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow")
    return f"sqlite:///{home / 'codat_request_budget.sqlite'}"


def budget_settings_from(extra: dict[str, Any], conn_id: str, base_url: str) -> BudgetSettings:
    """Read and check the budget's extras of connection ``conn_id`` (whose API is at ``base_url``).

    :raises CodatValidationError: an extra that is not a positive whole number, or a store URL of an unknown
        kind; the message names the extra and the connection.
    """
    rate = _whole(extra, "requests_per_minute", DEFAULT_REQUESTS_PER_MINUTE, conn_id)
    if rate > CODAT_IP_LIMIT_PER_MINUTE and urlsplit(base_url).hostname == "api.codat.io":
        log.warning(
            "Connection %s allows %s requests a minute: Codat may block an IP address past %s a minute.",
            conn_id,
            rate,
            CODAT_IP_LIMIT_PER_MINUTE,
        )
    reserve = extra.get("quota_reserve")
    return BudgetSettings(
        requests_per_minute=rate,
        concurrent_per_company=_whole(
            extra, "concurrent_requests_per_company", DEFAULT_CONCURRENT_PER_COMPANY, conn_id
        ),
        store=check_store(str(extra.get("request_budget_store") or default_store()), conn_id),
        key=str(extra.get("request_budget_key") or urlsplit(base_url).netloc or base_url),
        quota_reserve=None
        if reserve in (None, "")
        else _whole(extra, "quota_reserve", 0, conn_id, minimum=0),
    )


def check_store(url: str, conn_id: str) -> str:
    """``url`` if it names a store kind the budget knows.

    :raises CodatValidationError: naming the kinds it knows.
    """
    scheme = url.split("://", 1)[0].lower() if "://" in url else url.lower()
    if scheme not in STORE_SCHEMES:
        raise CodatValidationError(
            f"The request budget store of connection `{conn_id}` must be a sqlite:///path, redis://host:port/db "
            f"or memory URL (extra `request_budget_store` or ${STORE_ENV}), got {shorten(url)}."
        )
    return url


def _whole(extra: dict[str, Any], key: str, default: int, conn_id: str, minimum: int = 1) -> int:
    value = extra.get(key)
    if value is None or value == "":
        return default
    try:
        number = int(str(value).strip())
    except ValueError:
        number = None
    if number is None or number < minimum:
        raise CodatValidationError(
            f"Extra `{key}` of connection `{conn_id}` must be a whole number >= {minimum}, got {shorten(value)}."
        )
    return number
