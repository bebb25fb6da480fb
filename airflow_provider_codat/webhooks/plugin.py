"""The Airflow plugin (entry point ``airflow.plugins``) that mounts the receiver on Airflow's API server.

Airflow ≥ 3.1 mounts every plugin's ``fastapi_apps`` under their ``url_prefix``: Codat delivers to
``https://<your Airflow>/codat/webhooks``. The app is built when the API server loads plugins; it does no I/O
until the first delivery. The connection holding the secret is ``codat_default`` unless ``[codat]
webhook_conn_id`` (``AIRFLOW__CODAT__WEBHOOK_CONN_ID``) names another.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from airflow_provider_codat.defaults import DEFAULT_CONN_ID
from airflow_provider_codat.webhooks.dedupe import RecentIds
from airflow_provider_codat.webhooks.drainer_process import DrainerProcess
from airflow_provider_codat.webhooks.receiver import ReceiverParts, create_receiver_app
from airflow_provider_codat.webhooks.secret import CachedVerifier

URL_PREFIX = "/codat"


def _conn_id() -> str:
    from airflow.configuration import conf

    return conf.get("codat", "webhook_conn_id", fallback=DEFAULT_CONN_ID)


def build_app():
    """The receiver wired to Airflow: the Codat connection's secret, deliveries stored in the metadata DB, their
    asset events written by a drainer process of this API server process (started by the first delivery)."""
    parts = ReceiverParts(verifier=CachedVerifier(_conn_id()), seen=RecentIds(), drainer=DrainerProcess())
    return create_receiver_app(parts)


class CodatWebhooksPlugin(AirflowPlugin):
    """``POST /codat/webhooks``: Codat's signed webhooks become asset events: ``read.completed`` on
    ``codat://{dataType}``, which start the DAGs scheduled on them (``dags/codat_on_change.py``), connection,
    company and rate-limit events on their own assets (docs/webhooks.md)."""

    name = "codat_webhooks"
    fastapi_apps = [{"app": build_app(), "url_prefix": URL_PREFIX, "name": "Codat webhooks"}]
