"""``python -m airflow_provider_codat.simulator`` serves in the foreground and says how to reach it."""

from __future__ import annotations

import base64

import httpx
import pytest

from airflow_provider_codat.simulator.__main__ import main
from tests.simulator.cli import get_when_up, simulator_cli


def test_command_line_serves_and_prints_how_to_reach_it():
    limits = ["--requests-per-minute", "2", "--daily-quota", "50", "--quota-period-seconds", "30"]
    with simulator_cli("--companies", "2", "--api-key", "cli-key", "--seed", "7", *limits) as (process, port):
        text = "".join(iter(process.stdout.readline, "Ctrl-C to stop.\n"))
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
        assert "Limits:   2 requests a minute per IP, 50 requests every 30 s, 10 at once per company" in text
        assert '"requests_per_minute": 1' in text  # the printed Airflow connection stays under the limit
        assert response.headers["x-rate-limit-limit"] == "50"
        again = [httpx.get(f"http://127.0.0.1:{port}/companies", headers=headers) for _ in range(2)]
        assert [a.status_code for a in again] == [200, 429]


def test_command_line_refuses_a_bad_limit_naming_it(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--daily-quota", "0"])
    assert info.value.code == 2
    assert "daily_quota must be a positive number" in capsys.readouterr().err
