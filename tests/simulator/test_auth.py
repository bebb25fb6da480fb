"""Authentication exactly as Codat: ``Authorization: Basic base64(key)``; anything else is 401."""

from __future__ import annotations

import base64

import httpx
import pytest

from airflow_provider_codat.simulator import DEFAULT_API_KEY


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    "header",
    [
        None,
        f"Basic {_b64('wrong-key')}",
        f"Basic {_b64(':' + DEFAULT_API_KEY)}",
        f"Basic {_b64(DEFAULT_API_KEY + ':')}",
        f"Bearer {DEFAULT_API_KEY}",
        f"Basic {DEFAULT_API_KEY}",
        "Basic",
    ],
)
def test_bad_credentials_get_401_with_codat_body(sim, header):
    headers = {"Authorization": header} if header else {}
    response = httpx.get(f"{sim.base_url}/companies", headers=headers)
    assert response.status_code == 401
    body = response.json()
    assert set(body) == {
        "statusCode",
        "service",
        "error",
        "correlationId",
        "validation",
        "canBeRetried",
        "detailedErrorCode",
    }
    assert body["statusCode"] == 401 and body["canBeRetried"] == "Unknown"
    assert response.headers["x-rate-limit-limit"]


def test_good_key_and_rate_limit_headers(sim, client):
    response = client.get("/companies")
    assert response.status_code == 200
    assert int(response.headers["x-rate-limit-limit"]) == 1000 * (1 + 4)
    remaining = int(response.headers["x-rate-limit-remaining"])
    assert int(client.get("/companies").headers["x-rate-limit-remaining"]) == remaining - 1
    assert response.headers["x-rate-limit-reset"].endswith("T00:00:00Z")


@pytest.mark.codat_simulator(api_key="another-key")
def test_the_key_is_configurable(sim):
    assert sim.api_key == "another-key"
    ok = httpx.get(f"{sim.base_url}/companies", headers={"Authorization": f"Basic {_b64('another-key')}"})
    assert ok.status_code == 200
    old = httpx.get(f"{sim.base_url}/companies", headers={"Authorization": f"Basic {_b64(DEFAULT_API_KEY)}"})
    assert old.status_code == 401


def test_connection_json_points_at_the_simulator(sim):
    import json

    assert json.loads(sim.connection_json) == {
        "conn_type": "codat",
        "host": sim.base_url,
        "password": DEFAULT_API_KEY,
        # The suite's per-minute limit (100,000), less a tenth: the provider's budget stays under it.
        "extra": {"portal_url": f"{sim.base_url}/_simulator", "requests_per_minute": 90_000},
    }
    assert sim.conn_env == {"AIRFLOW_CONN_CODAT_DEFAULT": sim.connection_json}
