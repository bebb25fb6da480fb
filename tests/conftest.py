"""Shared fixtures. The simulator's fixture (`codat_simulator`) comes from the provider's pytest plugin."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import pytest

# Keep Airflow's config and any SQLite file out of the user's ~/airflow: one throwaway home per test session,
# removed when the session ends.
if "AIRFLOW_HOME" not in os.environ:
    os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="codat-tests-airflow-")
    atexit.register(shutil.rmtree, os.environ["AIRFLOW_HOME"], ignore_errors=True)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

from tests.airflow_cli import AirflowCLI


@pytest.fixture(scope="session")
def airflow_cli(tmp_path_factory) -> AirflowCLI:
    """A real Airflow on SQLite in a temporary home, migrated once per test session."""
    return AirflowCLI.create(tmp_path_factory.mktemp("airflow-home"))
