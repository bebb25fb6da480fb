"""The page's entry in the Airflow UI's menu (an ``external_views`` item of the webhooks plugin)."""

from __future__ import annotations

from typing import Any

from airflow_provider_codat.health.routes import PAGE_PATH
from airflow_provider_codat.version_compat import external_view

URL_ROUTE = "codat-health"


def health_view(url_prefix: str) -> dict[str, Any]:
    """Browse > Codat portfolio health, shown at ``/plugin/codat-health``.

    :param url_prefix: where the provider's app is mounted (``/codat``).
    """
    return external_view(
        name="Codat portfolio health", href=url_prefix + PAGE_PATH, url_route=URL_ROUTE, category="browse"
    )
