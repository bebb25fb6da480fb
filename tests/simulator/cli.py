"""Start ``python -m airflow_provider_codat.simulator`` on a free port from a test, and wait until it serves."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from tests.e2e.standalone import free_port


@contextmanager
def simulator_cli(*args: str) -> Iterator[tuple[subprocess.Popen, int]]:
    """The command line with ``args`` on a free port: yields the process (stdout piped) and the port."""
    port = free_port()
    command = [sys.executable, "-m", "airflow_provider_codat.simulator", "--port", str(port), *args]
    # stdout is what the command prints for people; logs go to stderr (Airflow 3.1 logs its alembic setup there
    # as soon as it is imported), kept apart so that they cannot push the banner down.
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True)
        try:
            yield process, port
        finally:
            process.terminate()
            process.wait(timeout=10)


def get_when_up(url: str, headers: dict[str, str] | None = None, timeout: float = 20) -> httpx.Response:
    """GET ``url`` once the server accepts connections."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return httpx.get(url, headers=headers)
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the simulator did not start"
            time.sleep(0.1)
