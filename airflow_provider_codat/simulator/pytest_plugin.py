"""Pytest plugin (entry point ``pytest11: codat_simulator``): a live Codat simulator for your tests.

One server runs per test session; each test gets a fresh state on it, so the fixture costs a few
milliseconds. Choose the state's parameters with a marker::

    @pytest.mark.codat_simulator(records=5, sync_seconds=0)
    def test_something(codat_simulator):
        httpx.get(codat_simulator.base_url + "/companies", headers=codat_simulator.auth_header)

Every test in a session shares one client IP, and test suites send requests far faster than Codat allows: the
fixture's per-minute limit is :data:`TEST_REQUESTS_PER_MINUTE` unless the marker sets ``requests_per_minute``.
The daily quota and the concurrency limit are Codat's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from airflow_provider_codat.simulator.server import RunningSimulator

# High enough that no test is held back by another's requests in the same minute (Codat's is 1,000).
TEST_REQUESTS_PER_MINUTE = 100_000


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "codat_simulator(**params): SimulatorState parameters for the codat_simulator fixture"
    )


@pytest.fixture(scope="session")
def codat_simulator_server() -> Iterator[RunningSimulator]:
    """The session's simulator server (state not reset; prefer ``codat_simulator``)."""
    # Imported here so that merely loading the plugin (every pytest run) does not import uvicorn/FastAPI.
    from airflow_provider_codat.simulator.server import run_in_thread
    from airflow_provider_codat.simulator.world import SimulatorState

    with run_in_thread(SimulatorState()) as running:
        yield running


@pytest.fixture
def codat_simulator(
    request: pytest.FixtureRequest, codat_simulator_server: RunningSimulator
) -> Iterator[RunningSimulator]:
    """A running simulator with a fresh state: yields a handle with ``base_url``, ``api_key``, ``control``,
    ``conn_env`` and ``connection_json``. Parameters come from a ``codat_simulator`` marker, if any."""
    from airflow_provider_codat.simulator.world import SimulatorState

    marker = request.node.get_closest_marker("codat_simulator")
    params = {"requests_per_minute": TEST_REQUESTS_PER_MINUTE, **(marker.kwargs if marker else {})}
    codat_simulator_server.replace_state(SimulatorState(**params))
    yield codat_simulator_server
    # Faults must not leak into whatever runs next on this server.
    codat_simulator_server.state.faults.clear()
