"""The Airflow plugin (entry point ``airflow.plugins``) that mounts the receiver on Airflow's API server.

Airflow ≥ 3.1 mounts every plugin's ``fastapi_apps`` under their ``url_prefix``: Codat delivers to
``https://<your Airflow>/codat/webhooks``. The app is built when the API server loads plugins; it does no I/O
until the API server starts, when it looks once for deliveries a killed process stored but did not drain. The
connection holding the secret is ``codat_default`` unless ``[codat] webhook_conn_id``
(``AIRFLOW__CODAT__WEBHOOK_CONN_ID``) names another.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import AsyncIterator

from airflow.plugins_manager import AirflowPlugin
from fastapi import FastAPI

from airflow_provider_codat.defaults import DEFAULT_CONN_ID
from airflow_provider_codat.health.menu import health_view
from airflow_provider_codat.webhooks.dedupe import RecentIds
from airflow_provider_codat.webhooks.drainer_process import DrainerProcess
from airflow_provider_codat.webhooks.inbox import has_undrained
from airflow_provider_codat.webhooks.receiver import ReceiverParts, create_receiver_app
from airflow_provider_codat.webhooks.secret import CachedVerifier
from airflow_provider_codat.webhooks.store import TABLE as INBOX_TABLE

URL_PREFIX = "/codat"
log = logging.getLogger(__name__)


def _conn_id() -> str:
    from airflow.configuration import conf

    return conf.get("codat", "webhook_conn_id", fallback=DEFAULT_CONN_ID)


def wake_for_undrained(drainer: DrainerProcess) -> None:
    """Start the drainer if deliveries are waiting: an API server killed after answering them leaves them in
    the inbox, and without this they would wait for the next delivery to reach this process.

    :param drainer: this API server process's drainer.
    """
    try:
        if has_undrained(INBOX_TABLE.engine()):
            log.info("Stored Codat deliveries wait for their asset events: starting the drainer")
            drainer.wake()
    except Exception:  # the API server starts all the same; the next delivery starts the drainer
        log.warning("Could not look for undrained Codat deliveries", exc_info=True)


def add_health_routes(app: FastAPI) -> None:
    """The portfolio health page's routes, added once, when the API server starts.

    Not at import: every task process loads plugins (for their macros), and the page's auth dependencies import
    Airflow's API server, about 1.5 s of CPU that a task would spend for nothing.

    :param app: the app mounted at ``/codat``.
    """
    if getattr(app.state, "health_routes", False):
        return
    from airflow_provider_codat.health.routes import health_router

    # The portfolio health page shares this app: a second app under /codat/... would never be reached.
    app.include_router(health_router())
    app.state.health_routes = True


@contextlib.asynccontextmanager
async def _on_start(app: FastAPI) -> AsyncIterator[None]:
    add_health_routes(app)
    # In a thread: the API server's start does not wait for the database.
    drainer = app.state.parts.drainer
    if drainer is None:
        yield
        return
    threading.Thread(
        target=wake_for_undrained, args=(drainer,), name="codat-webhooks-undrained", daemon=True
    ).start()
    yield


def build_app() -> FastAPI:
    """The receiver wired to Airflow: the Codat connection's secret, deliveries stored in the metadata DB, their
    asset events written by a drainer process of this API server process (started by the first delivery, or
    at the API server's start when deliveries wait)."""
    parts = ReceiverParts(verifier=CachedVerifier(_conn_id()), seen=RecentIds(), drainer=DrainerProcess())
    return create_receiver_app(parts, lifespan=_on_start)


class CodatWebhooksPlugin(AirflowPlugin):
    """``POST /codat/webhooks``: Codat's signed webhooks become asset events: ``read.completed`` on
    ``codat://{dataType}``, which start the DAGs scheduled on them (``dags/codat_on_change.py``), connection,
    company and rate-limit events on their own assets (docs/webhooks.md)."""

    name = "codat_webhooks"
    fastapi_apps = [{"app": build_app(), "url_prefix": URL_PREFIX, "name": "Codat webhooks"}]
    external_views = [health_view(URL_PREFIX)]
