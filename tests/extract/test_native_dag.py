"""The extract in a real Airflow run (`airflow dags test`, SQLite) against the simulator: the "Codat company"
link Airflow stores for the UI opens the simulator's company page, the run folder of an Airflow run id is a
safe name, and the OpenLineage provider emits the extract's lineage (file transport)."""

from __future__ import annotations

import json
import textwrap

import httpx
import pytest

from airflow_provider_codat.landing.layout import run_folder_name

pytestmark = [pytest.mark.slow]

DAG = textwrap.dedent(
    """
    from __future__ import annotations

    import pendulum
    from airflow.sdk import dag

    from airflow_provider_codat.operators.extract import CodatExtractOperator


    @dag(schedule=None, start_date=pendulum.datetime(2020, 1, 1), catchup=False)  # past on any test clock
    def codat_extract_native():
        CodatExtractOperator(
            task_id="extract_invoices",
            company_id="{{ var.value.codat_company }}",
            data_type="invoices",
            destination="{{ var.value.codat_destination }}",
        )


    codat_extract_native()
    """
)


def test_link_run_folder_and_lineage_in_a_real_run(airflow_cli, codat_simulator, tmp_path):
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags" / "codat_extract_native.py").write_text(DAG)
    company_id = codat_simulator.control.linked_company_ids()[0]
    events_file = tmp_path / "openlineage.jsonl"
    env = {
        **codat_simulator.conn_env,
        "AIRFLOW_VAR_CODAT_COMPANY": company_id,
        "AIRFLOW_VAR_CODAT_DESTINATION": (tmp_path / "landing").as_uri(),
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(events_file), "append": True}
        ),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "codat-tests",
    }
    result = airflow_cli.dags_test("codat_extract_native", dags_folder=tmp_path / "dags", extra_env=env)
    assert result.returncode == 0, result.output[-6000:]
    summary = result.xcom("extract_invoices")

    # The link Airflow keeps for the UI: the company page the connection's portal_url points at.
    link = result.xcom("extract_invoices", key="_link_CodatCompanyLink")
    assert link == f"{codat_simulator.base_url}/_simulator/companies/{company_id}/summary"
    page = httpx.get(link)
    company = next(c for c in codat_simulator.control.companies() if c["id"] == company_id)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert company["name"] in page.text and "invoices" in page.text

    # Airflow's run id carries ':' and '+'; the folder does not.
    assert ":" in result.run_id and "+" in result.run_id
    (run_folder,) = (tmp_path / "landing" / company_id / "invoices").glob("run=*")
    assert run_folder.name == run_folder_name(result.run_id)
    assert not set(run_folder.name) & set(":+ ")

    # The OpenLineage provider called the operator's facets on completion and emitted them.
    events = [json.loads(line) for line in events_file.read_text().splitlines() if line.strip()]
    complete = [
        e for e in events if e["eventType"] == "COMPLETE" and e["job"]["name"].endswith("extract_invoices")
    ]
    assert complete, [(e["eventType"], e["job"]["name"]) for e in events]
    (source,) = complete[-1]["inputs"]
    (landed,) = complete[-1]["outputs"]
    assert source["namespace"] == "codat://" + codat_simulator.base_url.removeprefix("http://")
    assert source["name"] == f"{company_id}/invoices"
    assert source["facets"]["schema"]["fields"][0]["name"] == "id"
    assert (landed["namespace"], landed["name"]) == (
        "file",
        str(tmp_path / "landing" / company_id / "invoices"),
    )
    assert landed["outputFacets"]["outputStatistics"]["rowCount"] == summary["records"] > 0
