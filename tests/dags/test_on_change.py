"""codat_on_change: scheduled on the webhook assets, extracting exactly the pairs its events name."""

from __future__ import annotations

from pathlib import Path

from airflow.sdk import Asset

from airflow_provider_codat.datatypes import CATALOGUE
from airflow_provider_codat.on_change import pairs_from_extras
from airflow_provider_codat.operators.extract import CodatExtractOperator
from airflow_provider_codat.version_compat import DagBag
from airflow_provider_codat.webhooks.events import EVENT_SOURCE

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "codat_on_change.py"
A = "0498e921-9b53-4396-a412-4f2f5983b0a2"
B = "1b5e3c2d-9a8f-4e7d-8c6b-5a4f3e2d1c0b"


def webhook(company_id, data_type, **more):
    return {"source": EVENT_SOURCE, "company_id": company_id, "data_type": data_type, **more}


def test_many_events_become_each_pair_once():
    extras = [
        webhook(A, "invoices", webhook_id="msg_1"),
        webhook(A, "invoices", webhook_id="msg_2"),  # a second sync of the same pair before the run
        webhook(B, "payments"),
        webhook(A.upper(), "payments"),  # the same company, spelled in capitals
        webhook(A, "invoices"),
    ]
    pairs = pairs_from_extras(extras)
    assert pairs == [
        {"company_id": A, "data_type": "invoices"},
        {"company_id": A, "data_type": "payments"},
        {"company_id": B, "data_type": "payments"},
    ]
    # Plain str: the pairs leave as XCom, whose serialiser refuses str subclasses such as CompanyId.
    assert {type(value) for pair in pairs for value in pair.values()} == {str}


def test_events_not_from_the_webhook_and_bad_entries_are_left_out():
    extras = [
        # The extract's own outlet event on the same asset: a summary, not a change notice.
        {"company_id": A, "data_type": "invoices", "records": 5, "watermark_to": "x"},
        webhook("../etc", "invoices"),
        webhook(A, "notAType"),
        webhook(None, "invoices"),
        "not a mapping",
        webhook(B, "bills"),
    ]
    assert pairs_from_extras(extras) == [{"company_id": B, "data_type": "bills"}]


def test_the_dag_is_scheduled_on_every_types_asset_and_maps_the_extract():
    bag = DagBag(dag_folder=str(DAG_FILE))
    assert bag.import_errors == {}
    dag = bag.dags["codat_on_change"]
    uris = {asset.uri for asset in dag.timetable.asset_condition.objects}
    assert uris == {Asset(f"codat://{key}").uri for key in CATALOGUE}
    assert dag.max_active_runs == 1
    extract = dag.get_task("extract")
    assert extract.operator_class is CodatExtractOperator
    assert extract.upstream_task_ids == {"changed_pairs"}
    assert not extract.outlets  # emitting on the same assets would start this DAG again
    # No refresh, no wait, no sensor: the webhook already says the sync finished.
    assert set(dag.task_ids) == {"changed_pairs", "extract"}
