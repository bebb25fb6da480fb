"""The operator's own duties: argument checks before any request, the outlet Metadata, progress logs."""

from __future__ import annotations

import logging

import pytest
from airflow.sdk import Asset
from airflow.sdk.execution_time.context import OutletEventAccessors

from airflow_provider_codat.errors import CodatValidationError
from airflow_provider_codat.operators.extract import CodatExtractOperator

COMPANY = "8a210b68-6988-11ed-a1eb-0242ac120002"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"company_id": "not-a-uuid"}, "company_id must be a UUID"),
        ({"data_type": "invoice"}, "Unknown Codat data type 'invoice'. Use one of"),
        ({"destination": "/tmp/out"}, "destination must be a storage URI"),
        ({"page_size": 0}, "page_size must be an integer from 1 to 5000"),
        ({"connection_id": "abc"}, "connection_id must be a UUID"),
    ],
)
def test_bad_arguments_fail_at_construction(kwargs, message):
    args = {"company_id": COMPANY, "data_type": "invoices", "destination": "file:///tmp/out", **kwargs}
    with pytest.raises(CodatValidationError, match=message):
        CodatExtractOperator(task_id="t", **args)


def test_templated_values_are_checked_when_the_task_runs(codat_simulator, monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_CONN_CODAT_DEFAULT", codat_simulator.connection_json)
    operator = CodatExtractOperator(
        task_id="t", company_id="{{ params.company }}", data_type="invoices", destination=f"file://{tmp_path}"
    )
    operator.company_id = "rendered-but-wrong"
    codat_simulator.control.reset_request_log()
    with pytest.raises(CodatValidationError, match="company_id must be a UUID"):
        operator.execute({"run_id": "r"})
    assert codat_simulator.control.request_log() == []


def test_connection_id_on_a_company_type_is_refused_before_any_request(codat_simulator, company, extract):
    codat_simulator.control.reset_request_log()
    with pytest.raises(CodatValidationError, match="read per company"):
        extract(company, "invoices", connection_id="8a210b68-6988-11ed-a1eb-0242ac120003")
    assert codat_simulator.control.request_log() == []


def test_rendered_booleans_are_understood(codat_simulator, company, extract):
    summary = extract(company, "taxRates", full_refresh="False", include_deleted="true")
    assert summary["records"] > 0
    with pytest.raises(CodatValidationError, match="full_refresh must be true or false"):
        extract(company, "taxRates", full_refresh="maybe")


def test_summary_goes_to_the_outlet_asset_as_metadata(codat_simulator, company, monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_CONN_CODAT_DEFAULT", codat_simulator.connection_json)
    asset, other = Asset("codat://invoices"), Asset("codat://bills")
    operator = CodatExtractOperator(
        task_id="t",
        company_id=company,
        data_type="invoices",
        destination=f"file://{tmp_path}",
        outlets=[asset, other],
    )
    events = OutletEventAccessors()
    summary = operator.execute({"run_id": "r", "outlet_events": events})
    assert events[asset].extra == summary
    assert set(summary) == {
        "company_id",
        "data_type",
        "records",
        "deleted",
        "pages",
        "files",
        "watermark_from",
        "watermark_to",
    }
    assert events[other].extra == {}


def test_no_metadata_without_the_outlet(codat_simulator, company, monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_CONN_CODAT_DEFAULT", codat_simulator.connection_json)
    operator = CodatExtractOperator(
        task_id="t", company_id=company, data_type="invoices", destination=f"file://{tmp_path}"
    )
    events = OutletEventAccessors()
    operator.execute({"run_id": "r", "outlet_events": events})
    assert len(events) == 0


def test_progress_is_logged_per_page_at_a_readable_rate(codat_simulator, company, extract, caplog):
    caplog.set_level(logging.INFO, logger="airflow_provider_codat.extract")
    extract(company, "invoices", "run1", page_size=10, log_interval=0)
    lines = [r.getMessage() for r in caplog.records if "pages read" in r.getMessage()]
    pages = len(lines)
    assert 5 <= pages <= 6 and f"{pages} pages read, 50 records written so far" in lines[-1]
    caplog.clear()
    extract(company, "invoices", "run2", page_size=10, full_refresh=True, log_interval=3600)
    lines = [r.getMessage() for r in caplog.records if "pages read" in r.getMessage()]
    assert lines == [lines[0]] and "1 pages read" in lines[0]


def test_construction_does_no_io_even_for_a_remote_destination(monkeypatch):
    import airflow.sdk.io.path as io_path

    lookups = []
    monkeypatch.setattr(io_path, "attach", lambda *args, **kwargs: lookups.append(args))
    operator = CodatExtractOperator(
        task_id="t", company_id=COMPANY, data_type="invoices", destination="s3://no_such_conn@bucket/codat"
    )
    assert lookups == []  # ObjectStoragePath would resolve the storage connection: not at parse time
    assert operator.destination == "s3://no_such_conn@bucket/codat"
    assert "hook" not in operator.__dict__  # the hook is built on first use, in execute


@pytest.mark.parametrize(
    "destination",
    [
        "file:///data/codat/../../etc",
        "file:///data/codat/..",
        "s3://aws_default@bucket/codat/%2e%2e/other",
        "file:///data/./codat",
        "file:///data/codat/..\\..\\etc",
    ],
)
def test_a_destination_that_climbs_out_is_refused_before_any_request(
    codat_simulator, monkeypatch, tmp_path, destination
):
    with pytest.raises(CodatValidationError, match=r"'\.\.' path segments"):
        CodatExtractOperator(task_id="t", company_id=COMPANY, data_type="invoices", destination=destination)
    # The same value rendered from the trigger form is refused when the task runs, before any request.
    monkeypatch.setenv("AIRFLOW_CONN_CODAT_DEFAULT", codat_simulator.connection_json)
    operator = CodatExtractOperator(
        task_id="t", company_id=COMPANY, data_type="invoices", destination="{{ params.destination }}"
    )
    operator.destination = destination
    codat_simulator.control.reset_request_log()
    with pytest.raises(CodatValidationError, match="write the folder out in full"):
        operator.execute({"run_id": "r1"})
    assert codat_simulator.control.request_log() == []
    assert not any(tmp_path.rglob("*.jsonl.gz"))


def test_overlong_input_gets_a_short_message():
    huge = "x" * 10_000
    for kwargs in (
        {"destination": huge},
        {"destination": "file:///" + huge + "/../y"},
        {"include_deleted": huge},
    ):
        args = {"company_id": COMPANY, "data_type": "invoices", "destination": "file:///tmp/out", **kwargs}
        try:
            CodatExtractOperator(task_id="t", **args)._request({"run_id": "r"})
        except CodatValidationError as exc:
            assert len(str(exc)) < 400
            continue
        raise AssertionError(f"{kwargs.keys()} was accepted")
