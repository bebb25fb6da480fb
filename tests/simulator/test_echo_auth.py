"""The ``echo_auth`` fault: a gateway error whose body repeats the request's Authorization header."""

from __future__ import annotations

import httpx
import pytest

from airflow_provider_codat.simulator.echo import ECHOES
from tests.key_leaks import leaks


@pytest.mark.parametrize("body_format", ["json", "html"])
@pytest.mark.parametrize("echo", ECHOES)
def test_echo_auth_repeats_the_header(codat_simulator, echo, body_format):
    sim = codat_simulator
    sim.control.add_fault("echo_auth", path="^/companies$", echo=echo, body_format=body_format)
    with httpx.Client(base_url=sim.base_url, headers=sim.auth_header) as client:
        answer = client.get("/companies")
        assert answer.status_code == 403
        assert answer.headers["content-type"].startswith(
            "application/json" if body_format == "json" else "text/html"
        )
        assert leaks(answer.text, sim.api_key), "the body must carry the key"
        if body_format == "json":
            assert answer.json()["service"] == "Gateway"
        assert client.get("/companies").status_code == 200  # times=1


def test_echo_auth_takes_a_status_and_refuses_bad_options(codat_simulator):
    control = codat_simulator.control
    assert control.add_fault("echo_auth", status=502, times=None)["status"] == 502
    for bad in ({"status": 200}, {"echo": "rot13"}, {"body_format": "xml"}):
        with pytest.raises(ValueError):
            control.add_fault("echo_auth", **bad)
