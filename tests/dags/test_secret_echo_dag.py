"""A real Airflow (`airflow dags test`, SQLite) against the simulator: a failed sync whose errorMessage repeats
the Authorization header, and a gateway that echoes it in an HTML page. The key reaches no XCom, no trigger
state, no task log and no row of the run in Airflow's database.

The echoes are spelled so that Airflow's own secrets masker (exact text only) cannot hide a leak: folded over
lines and written as HTML character references.
"""

from __future__ import annotations

import sqlite3
import textwrap

import pytest

from airflow_provider_codat.simulator.echo import echoed
from tests.key_leaks import assert_no_leak

pytestmark = pytest.mark.slow
DAG_ID = "codat_secret_echo"
DAG_FILE = textwrap.dedent(
    f'''
    import os

    from airflow.sdk import DAG

    from airflow_provider_codat.operators.refresh import CodatQueueDataTypesOperator
    from airflow_provider_codat.sensors.sync import CodatSyncSensor

    COMPANY = os.environ["CODAT_TEST_COMPANY"]
    with DAG("{DAG_ID}", schedule=None, catchup=False):
        refresh = CodatQueueDataTypesOperator(task_id="refresh", company_id=COMPANY, data_types=["invoices"])
        # The deferred wait goes first, while the sync still runs, so that it really hands over to a trigger;
        # the others then find the same sync finished.
        deferred, poke = (
            CodatSyncSensor(
                task_id=task_id, ticket=refresh.output, fail_on_error=False, deferrable=deferrable, poke_interval=1
            )
            for task_id, deferrable in (("wait_deferred", True), ("wait_poke", False))
        )
        failing = CodatSyncSensor(task_id="wait_failing", ticket=refresh.output, poke_interval=1)
        refresh >> deferred >> [poke, failing]
        CodatQueueDataTypesOperator(task_id="blocked", company_id=COMPANY, data_types=["bills"])
    '''
)


def _rows_of_the_run(db_path, run_id: str) -> list[str]:
    """Every row, as text, of every table that has the run's dag_id (plus the trigger table)."""
    texts = []
    with sqlite3.connect(db_path) as conn:
        tables = [row[0] for row in conn.execute("select name from sqlite_master where type = 'table'")]
        for table in tables:
            columns = [row[1] for row in conn.execute(f"pragma table_info('{table}')")]
            if "dag_id" in columns:
                rows = conn.execute(f"select * from '{table}' where dag_id = ?", (DAG_ID,)).fetchall()
            elif table == "trigger":
                rows = conn.execute("select * from 'trigger'").fetchall()
            else:
                continue
            texts += [repr(row) for row in rows]
    return texts


# The sync outlasts the refresh task and the deferred wait's start-up, even on a loaded machine (an older
# Airflow takes several seconds to start each task in `dags test`), so the wait always finds it running.
@pytest.mark.codat_simulator(sync_seconds=20, records=3, companies=2)
def test_echoed_key_reaches_no_xcom_log_or_database_row(airflow_cli, codat_simulator, tmp_path):
    sim = codat_simulator
    company = sim.control.linked_company_ids()[0]
    header = sim.auth_header["Authorization"]
    sim.control.fail_next_sync(
        company,
        "invoices",
        "FetchError",
        error_message=f"Upstream said: Authorization: {echoed(header, 'folded')}",
    )
    sim.control.add_fault(
        "echo_auth", path="/data/queue/bills", echo="entities", body_format="html", times=None
    )
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / f"{DAG_ID}.py").write_text(DAG_FILE)

    result = airflow_cli.dags_test(
        DAG_ID, dags_folder=dags, extra_env={**sim.conn_env, "CODAT_TEST_COMPANY": company}
    )

    assert result.run_id is not None, result.output[-5000:]
    states = result.task_states()
    assert states[("wait_failing", -1)] == "failed" and states[("blocked", -1)] == "failed", states
    assert "Upstream said" in result.output and "Request blocked" in result.output  # the messages were logged
    assert "Pausing task as DEFERRED" in result.output  # wait_deferred's outcome came through a trigger event
    outcomes = [result.xcom("wait_poke"), result.xcom("wait_deferred")]
    for outcome in outcomes:
        assert outcome["invoices"]["status"] == "FetchError"
        assert "Upstream said: Authorization:" in outcome["invoices"]["error_message"]
    log_files = [p.read_text(errors="replace") for p in (airflow_cli.home / "logs").rglob("*") if p.is_file()]
    assert_no_leak(
        sim.api_key, *outcomes, result.output, *_rows_of_the_run(result.db_path, result.run_id), *log_files
    )
