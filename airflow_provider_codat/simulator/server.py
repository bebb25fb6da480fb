"""Run the simulator with uvicorn in a background thread, for tests and notebooks."""

from __future__ import annotations

import base64
import json
import logging
import socket
import threading
import time

import uvicorn

from airflow_provider_codat.simulator.app import create_app
from airflow_provider_codat.simulator.control import SimulatorControl
from airflow_provider_codat.simulator.portal import PORTAL_PATH
from airflow_provider_codat.simulator.webhooks import stop_webhooks
from airflow_provider_codat.simulator.world import SimulatorState

log = logging.getLogger(__name__)


def simulator_connection_json(
    base_url: str,
    api_key: str,
    webhook_secret: str | None = None,
    requests_per_minute: int | None = None,
) -> str:
    """An Airflow connection (JSON form) to the simulator at ``base_url``; its company links open the
    simulator's own company pages.

    :param base_url: ``http://host:port``.
    :param api_key: the simulator's API key.
    :param webhook_secret: the signing secret of the simulator's webhooks, if they are configured.
    :param requests_per_minute: the simulator's per-minute limit, if it has one: the connection's
        ``requests_per_minute`` extra is 90% of it, rounded down (the provider's budget stays under the limit).
    """
    extra: dict = {"portal_url": base_url + PORTAL_PATH}
    if webhook_secret:
        extra["webhook_secret"] = webhook_secret
    if requests_per_minute:
        extra["requests_per_minute"] = max(1, requests_per_minute * 9 // 10)
    return json.dumps({"conn_type": "codat", "host": base_url, "password": api_key, "extra": extra})


class RunningSimulator:
    """A simulator answering on a local port.

    :param server: the uvicorn server.
    :param thread: the thread running it.
    :param app: the FastAPI app (its ``state.simulator`` is the current :class:`SimulatorState`).
    :param base_url: ``http://host:port``.
    """

    def __init__(self, server: uvicorn.Server, thread: threading.Thread, app, base_url: str) -> None:
        self._server = server
        self._thread = thread
        self.app = app
        self.base_url = base_url
        self.control = SimulatorControl(lambda: app.state.simulator, self.replace_state)

    @property
    def state(self) -> SimulatorState:
        return self.app.state.simulator

    @property
    def api_key(self) -> str:
        return self.state.api_key

    @property
    def auth_header(self) -> dict[str, str]:
        """The ``Authorization`` header Codat expects for :attr:`api_key`."""
        return {"Authorization": "Basic " + base64.b64encode(self.api_key.encode()).decode()}

    @property
    def connection_json(self) -> str:
        """An Airflow connection (JSON form) pointing at this simulator, with the webhook signing secret in its
        ``webhook_secret`` extra once webhooks are configured, and a ``requests_per_minute`` extra under the
        simulator's per-minute limit when it has one."""
        state = self.state
        sender = state.webhook_sender
        return simulator_connection_json(
            self.base_url,
            self.api_key,
            sender.secret if sender else None,
            state.limits.settings.requests_per_minute,
        )

    @property
    def conn_env(self) -> dict[str, str]:
        """``{"AIRFLOW_CONN_CODAT_DEFAULT": connection_json}``, for ``monkeypatch.setenv`` or a subprocess."""
        return {"AIRFLOW_CONN_CODAT_DEFAULT": self.connection_json}

    def replace_state(self, state: SimulatorState) -> None:
        """Swap in a fresh state; the server keeps running on the same port.

        :param state: the new state.
        """
        stop_webhooks(self.app.state.simulator)
        self.app.state.simulator = state

    def stop(self) -> None:
        stop_webhooks(self.state)
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> RunningSimulator:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def serve_in_thread(
    app, host: str = "127.0.0.1", port: int = 0
) -> tuple[uvicorn.Server, threading.Thread, str]:
    """Serve any ASGI ``app`` with uvicorn in a daemon thread; return once it accepts connections.

    :param app: the ASGI app.
    :param host: interface to bind.
    :param port: port to bind; 0 picks a free one.
    :returns: the server (set ``should_exit`` to stop it), its thread and ``http://host:port``.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_level="critical", access_log=False, lifespan="off", timeout_keep_alive=30
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="uvicorn-in-thread", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("The server did not start.")
        time.sleep(0.01)
    return server, thread, f"http://{host}:{bound_port}"


def run_in_thread(
    state: SimulatorState | None = None, host: str = "127.0.0.1", port: int = 0
) -> RunningSimulator:
    """Start the simulator in a daemon thread and return once it accepts connections.

    :param state: the state to serve (a default one when ``None``).
    :param host: interface to bind.
    :param port: port to bind; 0 picks a free one.
    """
    app = create_app(state or SimulatorState())
    server, thread, base_url = serve_in_thread(app, host, port)
    log.debug("Codat simulator listening on %s", base_url)
    return RunningSimulator(server, thread, app, base_url)
