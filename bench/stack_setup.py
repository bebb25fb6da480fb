"""What the benches on the production topology share: the repository on the import path (``tools/stack.py``'s :class:`Stack`),
the DAG they run, the simulator's world for it, and a call to the simulator's control API."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
for folder in (ROOT, ROOT / "tools"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from local_airflow import DAGS_FOLDER  # noqa: E402  (tools/, on the path from here on)
from stack import Stack  # noqa: E402

__all__ = ["DAGS_FOLDER", "DAG_ID", "RECORDS", "ROOT", "SYNC_SECONDS", "Stack", "control"]

DAG_ID = "codat_sync_daily"
SYNC_SECONDS = 2.0  # the simulator's syncs: short, so the figures are mostly Airflow's cost
RECORDS = 20  # records per data type and company


def control(simulator_url: str, operation: str, **kwargs: Any) -> Any:
    """Call the simulator's control API (``POST /_simulator/{operation}``) and return its result."""
    response = httpx.post(f"{simulator_url}/_simulator/{operation}", json=kwargs, timeout=120)
    response.raise_for_status()
    return response.json()["result"]
