"""Fixtures for the simulator's own tests: an authenticated client on the ``codat_simulator`` fixture."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from airflow_provider_codat.simulator import RunningSimulator


@pytest.fixture
def sim(codat_simulator: RunningSimulator) -> RunningSimulator:
    return codat_simulator


@pytest.fixture
def client(sim: RunningSimulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.base_url, headers=sim.auth_header, timeout=10) as http:
        yield http


@pytest.fixture
def company_id(sim: RunningSimulator) -> str:
    """The first company: Linked, with Accounting, Banking and Commerce connections."""
    return sim.control.linked_company_ids()[0]
