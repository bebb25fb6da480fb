"""Shared fixtures. The simulator's fixture (`codat_simulator`) comes from the provider's pytest plugin."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import time_machine

# Keep Airflow's config and any SQLite file out of the user's ~/airflow: one throwaway home per test process,
# removed when it ends. Under pytest-xdist every worker makes its own: a worker inherits the environment of the
# process that started it, and a home shared by workers would share its SQLite database and config.
if os.environ.get("AIRFLOW_HOME", "") in ("", os.environ.get("CODAT_TESTS_OWN_AIRFLOW_HOME")):
    os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="codat-tests-airflow-")
    os.environ["CODAT_TESTS_OWN_AIRFLOW_HOME"] = os.environ["AIRFLOW_HOME"]
    atexit.register(shutil.rmtree, os.environ["AIRFLOW_HOME"], ignore_errors=True)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
# Triggers run in this process (or under `airflow dags test`) with no scheduler to race, so they fire at once;
# Airflows started as servers (standalone, the stack) drop this and keep the settling (triggers/sync.py).
os.environ.setdefault("CODAT_TRIGGER_SETTLE_SECONDS", "0")

from tests.airflow_cli import AirflowCLI, migrated_database


@pytest.fixture(autouse=True)
def _own_request_budget(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test spends from a request budget of its own (this process only), so that one test's requests or
    spent quota never slow or refuse another's; tests of sharing name a store of their own."""
    monkeypatch.setenv("CODAT_REQUEST_BUDGET_STORE", f"memory://{request.node.nodeid}")


@pytest.fixture(scope="session")
def migrated_airflow_db(tmp_path_factory) -> Path:
    """A migrated SQLite metadata database, made once per test run and shared by pytest-xdist's workers."""
    base = tmp_path_factory.getbasetemp()
    # A worker's base folder (``.../pytest-N/gw0``) sits in the run's own; without workers the base is the run's.
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    return migrated_database(shared)


@pytest.fixture(scope="session")
def airflow_cli(tmp_path_factory, migrated_airflow_db: Path) -> AirflowCLI:
    """A real Airflow on SQLite in a temporary home of this test process, its database a migrated copy."""
    return AirflowCLI.create(tmp_path_factory.mktemp("airflow-home"), migrated=migrated_airflow_db)


@pytest.fixture
def clock_at(request: pytest.FixtureRequest) -> Iterator[datetime]:
    """The clock stopped at ``request.param`` (one of ``tests.moments.MOMENTS``, parametrised indirectly).

    time-machine replaces ``time.time()`` and ``datetime.now()`` for every thread, so the simulator's server
    thread (its ``Clock`` reads ``time.time()``) and Airflow see the same moment; ``time.monotonic()`` and
    sleeping are left alone, so servers, timeouts and asyncio run as usual. A moment in a local zone also sets
    ``TZ`` to that zone. The clock does not tick: a test at 23:59:59 cannot cross midnight halfway through.
    Tests that wait on the clock use ``time_machine.travel(moment, tick=True)`` instead.
    """
    with time_machine.travel(request.param, tick=False):
        yield request.param


# The end-to-end tests that start servers (a standalone Airflow, the stack) run one after another on one worker
# (two such starts side by side on 2 cores miss their windows), and first: their chain is the run's longest, so
# the other workers take the rest of the suite beside it.
SERVERS_GROUP = "servers"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("e2e"):
            item.add_marker(pytest.mark.xdist_group(SERVERS_GROUP))
    items.sort(key=lambda item: item.get_closest_marker("e2e") is None)  # stable: else collection order
