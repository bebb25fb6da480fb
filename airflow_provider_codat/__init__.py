"""Apache Airflow provider for Codat: queue refreshes, wait for exactly those syncs, extract what changed."""

from __future__ import annotations

__version__ = "0.1.0"

PACKAGE_NAME = "airflow-provider-codat"


def get_provider_info() -> dict:
    """Describe this provider to Airflow's provider manager (read through the entry point, no I/O)."""
    return {
        "package-name": PACKAGE_NAME,
        "name": "Codat",
        "description": "Codat (https://www.codat.io/): keep small-business accounting, banking and commerce "
        "data fresh and land it in your own storage.",
        "versions": [__version__],
        "connection-types": [
            {
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
                "conn-fields": {
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
                },
            }
        ],
        "extra-links": ["airflow_provider_codat.links.CodatCompanyLink"],
        "integrations": [{"integration-name": "Codat", "external-doc-url": "https://docs.codat.io/"}],
        "operators": [
            {
                "integration-name": "Codat",
                "python-modules": [
                    "airflow_provider_codat.operators.refresh",
                    "airflow_provider_codat.operators.companies",
                    "airflow_provider_codat.operators.company",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": "Codat",
                "python-modules": [
                    "airflow_provider_codat.sensors.sync",
                    "airflow_provider_codat.sensors.freshness",
                ],
            }
        ],
        "triggers": [
            {"integration-name": "Codat", "python-modules": ["airflow_provider_codat.triggers.sync"]}
        ],
    }
