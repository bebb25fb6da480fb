"""Every refresh operator and the sensor, deferrable, in one real DAG run (`airflow dags test`) against the
simulator: proves the trigger runs in a triggerer loop and that ``execute_complete`` takes its event."""

from __future__ import annotations

import json
import textwrap

import pytest

# Each sync outlasts its task's start and first poke, also on a machine busy with other tests' Airflows (a task
# takes seconds to start in `dags test`), so that every wait defers.
pytestmark = [pytest.mark.slow, pytest.mark.codat_simulator(sync_seconds=10)]

DAG = textwrap.dedent(
    """
    from __future__ import annotations

    import pendulum
    from airflow.sdk import dag

    from airflow_provider_codat.operators.companies import CodatListCompaniesOperator
    from airflow_provider_codat.operators.refresh import (
        CodatQueueDataTypesOperator,
        CodatRefreshAllDataOperator,
    )
    from airflow_provider_codat.sensors.freshness import CodatFreshnessSensor
    from airflow_provider_codat.sensors.sync import CodatSyncSensor

    FAST = {"poll_interval": 0.5, "max_poll_interval": 1, "timeout": 120}


    @dag(schedule=None, start_date=pendulum.datetime(2020, 1, 1), catchup=False)  # past on any test clock
    def codat_sync_deferrable():
        company = "{{ var.value.codat_company }}"
        companies = CodatListCompaniesOperator(task_id="companies")
        fanout = CodatQueueDataTypesOperator.partial(task_id="fanout", data_types=["taxRates"]).expand(
            company_id=companies.output
        )
        queue = CodatQueueDataTypesOperator(
            task_id="queue", company_id=company, data_types=["invoices", "payments"],
            wait_for_completion=True, deferrable=True, **FAST,
        )
        refresh_all = CodatRefreshAllDataOperator(
            task_id="refresh_all", company_id=company, data_types=["bills", "purchaseOrders"],
            wait_for_completion=True, deferrable=True, **FAST,
        )
        again = CodatQueueDataTypesOperator(task_id="again", company_id=company, data_types="customers")
        wait = CodatSyncSensor(
            task_id="wait", ticket=again.output, deferrable=True, poke_interval=0.5, max_poke_interval=1,
            timeout=120,
        )
        fresh = CodatFreshnessSensor(
            task_id="fresh", company_id=company, data_types=["invoices", "bills", "customers"],
            max_age=600, max_skew=600, poke_interval=1, timeout=30,
        )
        companies >> fanout
        fanout >> queue >> refresh_all >> again >> wait >> fresh


    codat_sync_deferrable()
    """
)


def test_operators_and_sensor_deferrable_in_a_real_dag(airflow_cli, codat_simulator, tmp_path):
    (tmp_path / "codat_sync_deferrable.py").write_text(DAG)
    control = codat_simulator.control
    company_id = control.linked_company_ids()[0]
    env = {**codat_simulator.conn_env, "AIRFLOW_VAR_CODAT_COMPANY": company_id}
    result = airflow_cli.dags_test("codat_sync_deferrable", dags_folder=tmp_path, extra_env=env, timeout=300)
    assert result.returncode == 0, result.output[-6000:]
    states = result.task_states()
    assert {k: v for k, v in states.items() if k[1] == -1} == {
        ("companies", -1): "success",
        ("queue", -1): "success",
        ("refresh_all", -1): "success",
        ("again", -1): "success",
        ("wait", -1): "success",
        ("fresh", -1): "success",
    }
    companies = result.xcom("companies")
    assert company_id in companies
    assert sorted(k for k in states if k[0] == "fanout") == [("fanout", i) for i in range(len(companies))]

    status = {}
    for task_id, types in (("queue", ["invoices", "payments"]), ("refresh_all", ["bills", "purchaseOrders"])):
        ticket = result.xcom(task_id)
        assert sorted(ticket["datasets"]) == types
        # execute_complete ran: the outcomes came back from the trigger's event.
        assert {t: o["status"] for t, o in ticket["outcomes"].items()} == dict.fromkeys(types, "Complete")
        assert {t: o["dataset_id"] for t, o in ticket["outcomes"].items()} == ticket["datasets"]
        status.update(ticket["datasets"])
    customers = result.xcom("again")["datasets"]["customers"]
    assert result.xcom("wait")["customers"]["dataset_id"] == customers
    assert result.xcom("wait")["customers"]["status"] == "Complete"
    url = result.xcom("queue", key="codat_company_url")
    assert url.endswith(f"/companies/{company_id}/summary")
    # The link the UI shows: pushed by the task, then set again by Airflow from CodatCompanyLink.get_link.
    assert result.xcom("wait", key="_link_CodatCompanyLink") == url
    assert "Failed to push an xcom for task operator extra link" not in result.output
    # The three waits deferred: the output shows the trigger's own log lines.
    assert result.output.count("CodatSyncTrigger") >= 3, result.output[-4000:]
    assert set(json.loads(json.dumps(status))) == {"invoices", "payments", "bills", "purchaseOrders"}
