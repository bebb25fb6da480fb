"""Apache Airflow provider for Codat: queue refreshes, wait for exactly those syncs, extract what changed."""

from __future__ import annotations

import copy

__version__ = "0.1.0"

PACKAGE_NAME = "airflow-provider-codat"
# Also the Documentation URL of the package metadata (pyproject.toml), which is where Airflow reads it from.
DOCUMENTATION_URL = "https://pypi.org/project/airflow-provider-codat/"


# The connection form's extra fields (``conn-fields``): Airflow 3.2+ reads them here, 3.1 through the hook.
_CONNECTION_FIELDS = {
    "timeout": {
        "label": "Timeout (seconds)",
        "schema": {"type": ["number", "null"], "minimum": 1},
        "description": "Per-request timeout. Default 30.",
    },
    "max_retries": {
        "label": "Max retries",
        "schema": {"type": ["integer", "null"], "minimum": 0},
        "description": "Retries for 408, 429, 5xx and dropped connections. Default 5.",
    },
    "max_retry_time": {
        "label": "Max retry time (seconds)",
        "schema": {"type": ["number", "null"], "minimum": 0},
        "description": "Give up retrying once this much time has passed. Default 300.",
    },
    "portal_url": {
        "label": "Portal URL",
        "schema": {"type": ["string", "null"]},
        "description": "Codat portal base for company links. Default https://app.codat.io.",
    },
    "webhook_secret": {
        "label": "Webhook signing secret",
        "schema": {"type": ["string", "null"], "format": "password"},
        "description": "The whsec_... secret of the endpoint registered in Codat's portal for "
        "/codat/webhooks (docs/webhooks.md). Only the webhook receiver reads it.",
    },
}

# The connection type ``codat``: the hook, and how the standard fields of the form are shown.
_CONNECTION_TYPE = {
    "hook-class-name": "airflow_provider_codat.hooks.codat.CodatHook",
    "connection-type": "codat",
    "hook-name": "Codat",
    "ui-field-behaviour": {
        "hidden-fields": ["schema", "login", "port", "extra"],
        "relabeling": {"host": "Base URL", "password": "API key"},
        "placeholders": {
            "host": "https://api.codat.io",
            "password": "Your Codat API key (Settings > Developers > API keys)",
        },
    },
    "conn-fields": _CONNECTION_FIELDS,
}


def _modules(kind: str, *modules: str) -> list[dict]:
    """One integration entry (``{"integration-name": "Codat", "python-modules": [...]}``) of ``kind``."""
    return [
        {
            "integration-name": "Codat",
            "python-modules": [f"airflow_provider_codat.{kind}.{m}" for m in modules],
        }
    ]


_PROVIDER_INFO = {
    "package-name": PACKAGE_NAME,
    "name": "Codat",
    "description": "Codat (https://www.codat.io/): keep small-business accounting, banking and commerce "
    "data fresh and land it in your own storage.",
    "versions": [__version__],
    "documentation-url": DOCUMENTATION_URL,
    "connection-types": [_CONNECTION_TYPE],
    "extra-links": ["airflow_provider_codat.links.CodatCompanyLink"],
    "integrations": [
        {"integration-name": "Codat", "external-doc-url": "https://docs.codat.io/", "tags": ["service"]}
    ],
    "hooks": _modules("hooks", "codat"),
    "operators": _modules("operators", "base", "refresh", "companies", "extract", "company", "tables"),
    "sensors": _modules("sensors", "sync", "freshness"),
    "triggers": _modules("triggers", "sync"),
}


def get_provider_info() -> dict:
    """Describe this provider to Airflow's provider manager (read through the entry point, no I/O).

    A fresh copy each call: a caller may change what it gets without changing the next answer.
    """
    return copy.deepcopy(_PROVIDER_INFO)
