"""The builder's small tasks, called directly: who is synced in which batch, and what the summary says."""

from __future__ import annotations

import dataclasses
import importlib.util
import warnings
from datetime import timedelta
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowException

from airflow_provider_codat.dags_builder import SyncSpec, codat_sync_task_group
from airflow_provider_codat.dags_builder.sync_dag import trigger_params
from airflow_provider_codat.dags_builder.tasks import batches, summary
from airflow_provider_codat.datatypes import Kind, get_data_type
from airflow_provider_codat.errors import UnknownDataTypeError
from airflow_provider_codat.landing.destination import resolve_destination

ROOT = Path(__file__).resolve().parents[2]
A, B, C = (f"{n}0000000-0000-4000-8000-000000000000" for n in "abc")


def _entry(company: str, name: str | None = None) -> dict:
    return {"id": company, "name": name or f"Company {company[0].upper()}"}


def test_batches_one_company_per_task_named_after_it_and_reject_unknown_types():
    work = batches.function(
        [_entry(A), _entry(B), _entry(A)], ["invoices", "payments"], None, "/data/codat", "True"
    )
    assert [(w["company_id"], w["company_name"]) for w in work] == [(A, "Company A"), (B, "Company B")]
    assert {w["destination"] for w in work} == {"file:///data/codat"}
    assert all(w["full_refresh"] is True and w["data_types"] == ["invoices", "payments"] for w in work)
    with pytest.raises(UnknownDataTypeError, match="invoicez"):
        batches.function([_entry(A)], ["invoicez"])
    with pytest.raises(AirflowException, match="data types"):
        batches.function([_entry(A)], [])
    with pytest.raises(AirflowException, match="not in this DAG's table"):
        batches.function([_entry(A)], ["bills"], ["invoices", "payments"])


def test_past_max_map_length_companies_are_batched_at_run_time(monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__MAX_MAP_LENGTH", "2")
    companies = [_entry(f"{n:08x}-0000-4000-8000-000000000000", f"Co {n}") for n in range(5)]
    work = batches.function(companies, ["invoices"], None, "/data/codat")
    assert len(work) <= 2  # within the limit, whatever the number of companies
    assert [c for w in work for c in w["company_id"]] == [c["id"] for c in companies]
    assert work[0]["company_name"] == "Co 0 + 2 more"


def _outcome(company: str, status: str = "extracted", records: int = 0) -> dict:
    return {"company_id": company, "status": status, "records": records, "deleted": 0}


def test_summary_names_the_failed_companies_and_totals_the_rest():
    work = batches.function([_entry(A), _entry(B), _entry(C)], ["invoices"], None, "/data/codat")
    # B's and C's tasks failed: Airflow hands over only the results that exist.
    results = [{"invoices": _outcome(A, records=7)}]
    with pytest.raises(AirflowException) as failure:
        summary.function(work, results)
    message = str(failure.value)
    assert f"Company B ({B})" in message and f"Company C ({C})" in message
    assert A not in message

    report = summary.function(work[:1], results)
    assert report["by_type"] == {"invoices": {"companies": 1, "records": 7, "deleted": 0}}
    assert report["companies_ok"] == [A] and report["destination"] == "file:///data/codat"
    reconciled = {**_outcome(A, records=2), "reconcile": {"status": "reconciled", "tombstoned": 3}}
    totals = summary.function(work[:1], [{"bankTransactions": reconciled}])["by_type"]
    assert totals == {"bankTransactions": {"companies": 1, "records": 2, "deleted": 0, "tombstoned": 3}}
    # A batch's result is keyed by company.
    batch = {"company_id": [A, B], "company_name": "Company A + 1 more", "destination": "file:///x"}
    both = {A: {"invoices": _outcome(A, records=1)}, B: {"invoices": _outcome(B, records=2)}}
    assert summary.function([batch], [both])["by_type"]["invoices"]["records"] == 3


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
    with pytest.raises(ValueError, match="^x: refresh must be one of 'queue', 'all' or 'none'"):
        SyncSpec(dag_id="x", schedule=None, data_types=["invoices"], refresh="sometimes")


def test_the_group_checks_its_arguments_at_parse_time():
    with pytest.raises(ValueError, match="^refresh must be one of 'queue', 'all' or 'none'"):
        codat_sync_task_group(companies=[A], data_types=["invoices"], refresh="sometimes")
    with pytest.raises(UnknownDataTypeError, match="invoicez"):
        codat_sync_task_group(companies=[A], data_types=["invoicez"])


def test_the_trigger_form_offers_the_rows_types():
    params = trigger_params(["invoices", "payments"])
    assert list(params) == ["company_ids", "data_types", "full_refresh", "destination"]
    assert params["data_types"].value == ["invoices", "payments"]
    assert params["data_types"].schema["items"]["enum"] == ["invoices", "payments"]


def test_reconcile_is_checked_at_parse_time_and_the_weekly_dag_reconciles_every_flagless_type():
    with pytest.raises(ValueError, match="^x: reconcile names 'invoices', which needs no reconcile"):
        SyncSpec(dag_id="x", schedule=None, data_types=["invoices"], reconcile=["invoices"])
    with pytest.raises(ValueError, match="^x: reconcile names 'bankTransactions', which is not among"):
        SyncSpec(dag_id="x", schedule=None, data_types=["invoices"], reconcile=["bankTransactions"])
    with pytest.raises(ValueError, match="needs no reconcile"):  # a snapshot: one object, written whole
        codat_sync_task_group(companies=[A], data_types=["company"], reconcile=["company"])
    mixed = SyncSpec(dag_id="x", schedule=None, data_types=["invoices", "bankTransactions"], reconcile=True)
    assert mixed.reconcile_types == ["bankTransactions"]

    table = _sync_table()
    weekly = next(row for row in table if row.dag_id == "codat_sync_weekly")
    extracted = {key for row in table for key in row.data_types}
    flagless = {
        key
        for key in extracted
        if get_data_type(key).kind is not Kind.SNAPSHOT and not get_data_type(key).has_deleted_flag
    }
    # 11 incremental types (full reads) and 3 read whole every run (compared with their own run's read).
    assert len(flagless) == 14 and set(weekly.reconcile_types) == flagless
    assert all(not row.reconcile_types for row in table if row is not weekly)


def _sync_table() -> list[SyncSpec]:
    spec = importlib.util.spec_from_file_location("codat_sync_table", ROOT / "dags" / "codat_sync.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SYNC_TABLE


def test_the_wait_settings_have_the_operators_names_and_the_former_ones_still_work_with_a_warning():
    from datetime import timedelta

    from airflow.sdk import DAG

    from airflow_provider_codat.dags_builder.group import sync_task

    spec = SyncSpec(
        dag_id="x", schedule=None, data_types=["invoices"], poll_interval=7, timeout=timedelta(hours=1)
    )
    assert (spec.poll_interval, spec.max_poll_interval, spec.timeout) == (7, 600, timedelta(hours=1))
    with pytest.warns(DeprecationWarning, match="sync_timeout is deprecated: use timeout"):
        old = SyncSpec(dag_id="x", schedule=None, data_types=["invoices"], sync_timeout=timedelta(hours=2))
    assert old.timeout == timedelta(hours=2)
    with pytest.warns(DeprecationWarning, match="max_poke_interval is deprecated: use max_poll_interval"):
        old = SyncSpec(dag_id="x", schedule=None, data_types=["invoices"], max_poke_interval=120)
    assert old.max_poll_interval == 120

    with DAG("wait_names", schedule=None):
        new = codat_sync_task_group(companies=[A], data_types=["invoices"], group_id="new", poll_interval=9)
        with pytest.warns(DeprecationWarning, match="poke_interval is deprecated: use poll_interval"):
            former = codat_sync_task_group(
                companies=[A], data_types=["invoices"], group_id="former", poke_interval=9, sync_timeout=60
            )
    for group, timeout in ((new, timedelta(hours=6)), (former, 60)):
        kwargs = sync_task(group).partial_kwargs
        assert (kwargs["poll_interval"], kwargs["timeout"]) == (9, timeout), group.group_id


@pytest.mark.parametrize(
    ("old", "new", "value"),
    [("poke_interval", "poll_interval", 7), ("max_poke_interval", "max_poll_interval", 90)]
    + [("sync_timeout", "timeout", timedelta(hours=2))],
)
def test_a_former_wait_setting_name_reads_the_new_settings_value_with_a_warning_naming_the_reader(
    old, new, value
):
    spec = SyncSpec(dag_id="x", schedule=None, data_types=["invoices"], **{new: value})
    with pytest.warns(DeprecationWarning, match=f"{old} is deprecated: use {new}") as caught:
        read = getattr(spec, old)
    assert read == value == getattr(spec, new)
    assert caught[0].filename == __file__  # the warning points at the line that read the former name
    given = {"poke_interval": 3, "max_poke_interval": 30, "sync_timeout": timedelta(minutes=5)}[old]
    with pytest.warns(DeprecationWarning) as caught:
        old_spec = SyncSpec(dag_id="x", schedule=None, data_types=["invoices"], **{old: given})
    assert caught[0].filename == __file__  # at construction too: the caller's line, not the dataclass's
    with pytest.warns(DeprecationWarning):
        assert getattr(old_spec, old) == given == getattr(old_spec, new)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a copy neither warns nor takes the old value back
        assert getattr(dataclasses.replace(spec, **{new: given}), new) == given


def test_the_task_groups_former_names_warn_at_the_callers_line_and_an_unknown_name_is_refused():
    from airflow.sdk import DAG

    with DAG("former_names", schedule=None):
        with pytest.warns(DeprecationWarning, match="max_poke_interval is deprecated") as caught:
            codat_sync_task_group(companies=[A], data_types=["invoices"], group_id="g1", max_poke_interval=60)
        assert caught[0].filename == __file__
        with pytest.raises(TypeError, match="poke_intervall"):
            codat_sync_task_group(companies=[A], data_types=["invoices"], group_id="g2", poke_intervall=60)
