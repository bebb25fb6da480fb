"""The builder's small tasks, called directly: who gets extracted, and what the summary says."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowException

from airflow_provider_codat.dag_tasks import plan, resolve_destination, summary, targets
from airflow_provider_codat.dags_builder import SyncSpec
from airflow_provider_codat.datatypes import UnknownDataTypeError

A, B, C = (f"{n}0000000-0000-4000-8000-000000000000" for n in "abc")


def _ticket(company: str, **datasets: str) -> dict:
    return {"company_id": company, "requested_at": "2026-11-21T10:00:00Z", "datasets": datasets, "joined": []}


def _outcome(**statuses: tuple[str, str]) -> dict:
    return {t: {"status": s, "dataset_id": d, "error_message": None} for t, (d, s) in statuses.items()}


def test_targets_one_request_per_company_and_reject_unknown_types():
    assert targets.function([A, B, A], ["invoices", "payments"]) == [
        {"company_id": A, "data_types": ["invoices", "payments"]},
        {"company_id": B, "data_types": ["invoices", "payments"]},
    ]
    with pytest.raises(UnknownDataTypeError, match="invoicez"):
        targets.function([A], ["invoicez"])
    with pytest.raises(AirflowException, match="data types"):
        targets.function([A], [])
    with pytest.raises(AirflowException, match="not in this DAG's table"):
        targets.function([A], ["bills"], ["invoices", "payments"])


def test_maps_are_as_long_as_the_companies_and_past_the_limit_say_what_to_change(monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__MAX_MAP_LENGTH", "2")
    # Two companies × many types is fine: each type's extract task maps over the companies only.
    assert len(targets.function([A, B], ["invoices", "payments", "bills"])) == 2
    with pytest.raises(AirflowException, match="AIRFLOW__CORE__MAX_MAP_LENGTH"):
        targets.function([A, B, C], ["invoices"])


def test_plan_extracts_only_the_completed_syncs_of_companies_whose_wait_succeeded():
    tickets = [
        _ticket(A, invoices="d1", payments="d2"),
        _ticket(B, invoices="d3", payments="d4"),
        _ticket(C, invoices="d5"),
    ]
    # C's wait failed: Airflow hands over only the outcomes that exist, in no useful order.
    outcomes = [
        _outcome(invoices=("d3", "Complete"), payments=("d4", "NotSupported")),
        _outcome(invoices=("d1", "Complete"), payments=("d2", "Complete")),
    ]
    requested = [{"company_id": c, "data_types": ["invoices", "payments"]} for c in (A, B, C)]
    invoices = plan.function("invoices", requested, tickets, outcomes, "/data/codat", "True")
    assert sorted(p["company_id"] for p in invoices) == sorted([A, B])
    assert {p["data_type"] for p in invoices} == {"invoices"}
    assert {p["destination"] for p in invoices} == {"file:///data/codat"}
    assert {p["full_refresh"] for p in invoices} == {True}
    payments = plan.function("payments", requested, tickets, outcomes, "/data/codat", False)
    assert [p["company_id"] for p in payments] == [A]  # B's payments are NotSupported
    # A type the run did not choose gets no extracts (its task skips).
    assert plan.function("bills", requested, tickets, outcomes, "/data/codat", False) == []
    assert plan.function("invoices", [], [], [], "s3://bucket/codat", False) == []


def test_summary_names_the_failed_company_and_totals_the_rest():
    requested = [{"company_id": c, "data_types": ["invoices"]} for c in (A, B, C)]
    tickets = [_ticket(A, invoices="d1"), _ticket(B, invoices="d2")]  # C's refresh failed
    outcomes = [_outcome(invoices=("d1", "Complete"))]  # B's wait failed
    extracts = [
        [{"company_id": A, "data_type": "invoices", "destination": "file:///x", "full_refresh": False}]
    ]
    results = [[{"company_id": A, "data_type": "invoices", "records": 7, "deleted": 2}]]
    with pytest.raises(AirflowException) as failure:
        summary.function(requested, tickets, outcomes, extracts, results)
    message = str(failure.value)
    assert f"{B}: sync failed or timed out (wait)" in message
    assert f"{C}: refresh failed" in message
    assert A not in message

    report = summary.function(requested[:1], tickets[:1], outcomes, extracts, results)
    assert report["by_type"] == {"invoices": {"companies": 1, "records": 7, "deleted": 2}}
    assert report["companies_ok"] == [A] and report["destination"] == "file:///x"

    with pytest.raises(AirflowException, match=r"extract failed: invoices"):
        summary.function(requested[:1], tickets[:1], outcomes, extracts, [None])


def test_destination_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    monkeypatch.delenv("AIRFLOW_VAR_CODAT_DESTINATION", raising=False)
    assert resolve_destination() == (tmp_path / "codat-data").as_uri()
    monkeypatch.setenv("AIRFLOW_VAR_CODAT_DESTINATION", "s3://aws_default@bucket/codat")
    assert resolve_destination() == "s3://aws_default@bucket/codat"
    assert resolve_destination("/srv/codat") == "file:///srv/codat"


def test_a_typo_in_the_table_fails_the_import():
    with pytest.raises(UnknownDataTypeError, match="invoicez"):
        SyncSpec(dag_id="x", schedule=None, data_types=["invoicez"])
    with pytest.raises(ValueError, match="refresh"):
        SyncSpec(dag_id="x", schedule=None, data_types=["invoices"], refresh="sometimes")
