"""A real Airflow metadata database (SQLite, migrated) in this test process's own Airflow home, and the
health tables on it, emptied before each test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import delete

from tests.sync.conftest import company_id, sim, sim_clock  # noqa: F401 (fixtures)


@pytest.fixture(scope="session")
def airflow_db() -> Any:
    """Airflow's engine on a migrated SQLite database (the per-process home of tests/conftest.py)."""
    from airflow.utils.db import upgradedb

    from airflow_provider_codat.health.schema import TABLES

    upgradedb()
    return TABLES.engine()


@pytest.fixture
def health_engine(airflow_db: Any) -> Iterator[Any]:
    """The engine, with the health tables and the XCom reports emptied."""
    from airflow.models.xcom import XComModel

    from airflow_provider_codat.health import fold
    from airflow_provider_codat.health.schema import METADATA

    with airflow_db.begin() as connection:
        for table in METADATA.sorted_tables:
            connection.execute(delete(table))
        connection.execute(delete(XComModel.__table__))
    fold._folded_at = None
    yield airflow_db
