"""A real Airflow metadata database (SQLite, migrated) in this test process's own Airflow home, and the
health tables on it, emptied before each test."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete

from tests.sync.conftest import company_id, sim, sim_clock  # noqa: F401 (fixtures)


@pytest.fixture(scope="session")
def airflow_db(migrated_airflow_db: Path) -> Any:
    """Airflow's engine on a migrated SQLite database (the per-process home of tests/conftest.py): a copy of the
    run's migrated one, so that ``upgradedb`` finds nothing left to do."""
    from airflow.configuration import conf
    from airflow.utils.db import upgradedb

    from airflow_provider_codat.health.schema import TABLES

    database = Path(conf.get("database", "sql_alchemy_conn").removeprefix("sqlite:///"))
    if not database.exists():
        shutil.copyfile(migrated_airflow_db, database)
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
