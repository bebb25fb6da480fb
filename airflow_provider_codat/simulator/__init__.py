"""A local Codat API for tests, demos and benchmarks: seeded data, syncs that move, faults on demand.

Run it with ``python -m airflow_provider_codat.simulator``; in tests use the ``codat_simulator`` fixture.
Names are imported on first use, so loading the pytest plugin does not pull in FastAPI and uvicorn.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_provider_codat.simulator.app import create_app
    from airflow_provider_codat.simulator.control import SimulatorControl
    from airflow_provider_codat.simulator.server import RunningSimulator, run_in_thread
    from airflow_provider_codat.simulator.world import DEFAULT_API_KEY, SimulatorState

_EXPORTS = {
    "create_app": "app",
    "SimulatorControl": "control",
    "RunningSimulator": "server",
    "run_in_thread": "server",
    "DEFAULT_API_KEY": "world",
    "SimulatorState": "world",
}

__all__ = [
    "DEFAULT_API_KEY",
    "RunningSimulator",
    "SimulatorControl",
    "SimulatorState",
    "create_app",
    "run_in_thread",
]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
