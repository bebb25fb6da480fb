"""``python -m airflow_provider_codat.simulator`` serves in the foreground and says how to reach it."""

from __future__ import annotations

import base64
import socket
import subprocess
import sys
import time

import httpx


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_command_line_serves_and_prints_how_to_reach_it():
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_provider_codat.simulator",
            "--port",
            str(port),
            "--companies",
            "2",
            "--api-key",
            "cli-key",
            "--seed",
            "7",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        banner = [process.stdout.readline() for _ in range(5)]
        text = "".join(banner)
        assert f"http://localhost:{port}" in text
        assert "cli-key" in text
        assert (
            f'curl -H "Authorization: Basic $(printf %s cli-key | base64)" http://localhost:{port}/companies'
            in text
        )
        headers = {"Authorization": "Basic " + base64.b64encode(b"cli-key").decode()}
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/companies", headers=headers)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the simulator did not start"
                time.sleep(0.1)
        assert response.status_code == 200
        assert response.json()["totalResults"] == 2
    finally:
        process.terminate()
        process.wait(timeout=10)
