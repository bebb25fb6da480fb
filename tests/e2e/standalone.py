"""`make airflow` (tools/airflow_ui.py: airflow standalone) started from an end-to-end test, and waiting on it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "e2e"


class _AllAdminsToken(httpx.Auth):
    """The bearer token that ``simple_auth_manager_all_admins`` hands out (``GET /auth/token``), fetched on the
    first 401. Airflow 3.2+ adds one to every API request itself; 3.1 wants it on each request."""

    requires_response_body = True

    def __init__(self, base: str) -> None:
        self.base = base
        self.token: str | None = None

    def auth_flow(self, request: httpx.Request):
        if self.token:
            request.headers["Authorization"] = f"Bearer {self.token}"
        response = yield request
        if response.status_code == 401:
            answer = yield httpx.Request("GET", f"{self.base}/auth/token")
            self.token = answer.json()["access_token"]
            request.headers["Authorization"] = f"Bearer {self.token}"
            yield request


def api_client(base: str) -> httpx.Client:
    """A client of the REST API (``/api/v2``) of the Airflow at ``base`` (`make airflow`: every user an admin)."""
    return httpx.Client(base_url=base + "/api/v2", timeout=30, auth=_AllAdminsToken(base))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tail(log_file: Path, lines: int = 60) -> str:
    return "\n".join(log_file.read_text(errors="replace").splitlines()[-lines:]) if log_file.exists() else ""


def until(what: str, check, timeout: float, proc: subprocess.Popen, log_file: Path, every: float = 2.0):
    """Poll ``check`` until it returns something truthy; fail with the server log if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the server exited ({proc.returncode}) while waiting for {what}:\n{tail(log_file)}")
        try:
            result = check()
        except httpx.HTTPError:
            result = None
        if result:
            return result
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}:\n{tail(log_file)}")


@contextmanager
def make_airflow(
    home: Path, port: int, connection_json: str, log_name: str
) -> Iterator[tuple[str, subprocess.Popen, Path]]:
    """``tools/airflow_ui.py`` (what `make airflow` runs) on ``port``, with ``connection_json`` as
    ``codat_default``; yields ``(base URL, process, log file)`` and stops every component afterwards."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log_file = ARTIFACTS / log_name
    command = [
        sys.executable,
        str(ROOT / "tools" / "airflow_ui.py"),
        "--home",
        str(home),
        "--port",
        str(port),
    ]
    with log_file.open("w") as log:
        proc = subprocess.Popen(
            [*command, "--connection", connection_json],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield f"http://127.0.0.1:{port}", proc, log_file
    finally:
        # The tool forwards SIGTERM to standalone's own process group and stops its components.
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def wait_until_healthy(api: httpx.Client, proc: subprocess.Popen, log_file: Path, dag_id: str) -> None:
    """Every component healthy and ``dag_id`` parsed."""

    def healthy():
        health = api.get("/monitor/health").json()
        return all(
            health.get(part, {}).get("status") == "healthy"
            for part in ("scheduler", "triggerer", "dag_processor")
        )

    until("every Airflow component to be healthy", healthy, 420, proc, log_file)
    until(
        f"{dag_id} to be parsed", lambda: api.get(f"/dags/{dag_id}").status_code == 200, 180, proc, log_file
    )
