"""``python -m airflow_provider_codat.simulator`` serves in the foreground and says how to reach it."""

from __future__ import annotations

import base64

from tests.simulator.cli import get_when_up, simulator_cli


def test_command_line_serves_and_prints_how_to_reach_it():
    with simulator_cli("--companies", "2", "--api-key", "cli-key", "--seed", "7") as (process, port):
        banner = [process.stdout.readline() for _ in range(5)]
        text = "".join(banner)
        assert f"http://localhost:{port}" in text
        assert "cli-key" in text
        assert (
            f'curl -H "Authorization: Basic $(printf %s cli-key | base64)" http://localhost:{port}/companies'
            in text
        )
        headers = {"Authorization": "Basic " + base64.b64encode(b"cli-key").decode()}
        response = get_when_up(f"http://127.0.0.1:{port}/companies", headers)
        assert response.status_code == 200
        assert response.json()["totalResults"] == 2
