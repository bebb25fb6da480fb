"""Tables merged from runs a real extract landed from the simulator equal the simulator's live records."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest
from deltalake import DeltaTable

from airflow_provider_codat.errors import CodatTableError
from airflow_provider_codat.landing.layout import run_folder_name
from airflow_provider_codat.tables import merge as merge_module
from airflow_provider_codat.tables.merge import merge_runs
from tests.tables.conftest import assert_table_is_truth, land_changing_runs, table_rows, truth

RUNS = (
    "manual__2026-11-26T18:46:30.799815+00:00",
    "scheduled__2026-11-27T00:00:00+00:00",
    "scheduled__2026-11-28",
)


@pytest.fixture
def landing(tmp_path):
    return f"file://{tmp_path}/codat-data"


def _merge(landing, companies, run_id, data_type="invoices", **kwargs):
    return merge_runs(
        data_type=data_type, destination=landing, company_ids=companies, run_id=run_id, **kwargs
    )


def test_runs_merged_in_any_order_and_again_equal_the_simulator(codat_simulator, extract, landing, tmp_path):
    control = codat_simulator.control
    companies = control.linked_company_ids()[:2]
    for index, run_id in enumerate(RUNS):
        for company_id in companies:
            if index:  # modified twice over the runs, some deleted, some created
                control.mutate(company_id, "invoices", created=3, modified=4, deleted=2)
            extract(company_id, "invoices", run_id, destination=landing)
    first = _merge(landing, companies, RUNS[0])
    assert first.inserted > 0 and first.version is not None
    _merge(landing, companies, RUNS[2])  # the newest run first: run 1 is merged late
    late = _merge(landing, companies, RUNS[1])
    assert sorted(late.merged) == sorted(f"{c}/{run_folder_name(RUNS[1])}" for c in companies)
    table = tmp_path / "codat-data" / "_tables" / "invoices"
    assert_table_is_truth(table_rows(table), truth(control, companies, "invoices"))

    version = DeltaTable(str(table)).version()
    for run_id in RUNS:  # a retry, a clear, another DAG: every run merged again
        again = _merge(landing, companies, run_id)
        assert again.merged == [] and len(again.already_held) == len(companies)
    assert DeltaTable(str(table)).version() == version  # nothing committed
    assert_table_is_truth(table_rows(table), truth(control, companies, "invoices"))


def _invoice(record_id: str, **values) -> dict:
    return {
        "id": record_id,
        "modifiedDate": "2026-11-21T10:00:00.1234567Z",
        "issueDate": "2026-11-01T00:00:00",
        "currency": "GBP",
        "metadata": {"isDeleted": False},
        **values,
    }


def test_decimals_digit_for_digit_and_new_fields_widen_the_table_and_its_structs(
    codat_simulator, extract, landing, tmp_path
):
    control = codat_simulator.control
    company_id = control.linked_company_ids()[0]
    exact = {
        "totalAmount": Decimal("98765432109876.54"),
        "amountDue": Decimal("0.123456789012345678"),
        "currencyRate": Decimal("12345678901234567890.123456789012345678"),  # 38 digits
        "lineItems": [{"unitAmount": Decimal("-0.000000000000000001"), "quantity": 3}],
    }
    control.put_record(company_id, "invoices", _invoice("exact", **exact))
    extract(company_id, "invoices", RUNS[0], destination=landing)
    _merge(landing, [company_id], RUNS[0])
    control.put_record(
        company_id,
        "invoices",
        _invoice(
            "wider",
            modifiedDate="2026-11-22T10:00:00Z",
            fieldAddedLater={"a": 1},
            customerRef={"id": "c-1", "regionAddedLater": "EU"},
            lineItems=[{"unitAmount": Decimal("2.50"), "accountRef": {"id": "a-1", "codeAddedLater": 4000}}],
        ),
    )
    control.mutate(company_id, "invoices", modified=2)
    extract(company_id, "invoices", RUNS[1], destination=landing)
    _merge(landing, [company_id], RUNS[1])

    rows = table_rows(tmp_path / "codat-data" / "_tables" / "invoices")
    by_id = {row["id"]: row for row in rows}
    assert by_id["exact"]["currencyRate"] == exact["currencyRate"]
    assert str(by_id["exact"]["lineItems"][0]["unitAmount"]) == "-1E-18"
    assert by_id["wider"]["fieldAddedLater"] == '{"a":1}' and by_id["exact"]["fieldAddedLater"] is None
    assert by_id["wider"]["customerRef"]["regionAddedLater"] == "EU"  # structs widen too
    assert by_id["wider"]["lineItems"][0]["accountRef"]["codeAddedLater"] == "4000"
    assert (
        by_id["exact"]["lineItems"][0]["unitAmount"] == exact["lineItems"][0]["unitAmount"]
    )  # copied intact
    assert_table_is_truth(rows, truth(control, [company_id], "invoices"))


def test_a_value_that_does_not_fit_fails_naming_the_record_and_commits_nothing(
    codat_simulator, extract, landing, tmp_path
):
    control = codat_simulator.control
    company_id = control.linked_company_ids()[0]
    extract(company_id, "invoices", RUNS[0], destination=landing)
    _merge(landing, [company_id], RUNS[0])
    table = tmp_path / "codat-data" / "_tables" / "invoices"
    before, version = table_rows(table), DeltaTable(str(table)).version()
    control.mutate(company_id, "invoices", modified=3, deleted=1)
    control.put_record(
        company_id,
        "invoices",
        _invoice(
            "too-fine",
            modifiedDate="2026-12-01T00:00:00Z",
            amountDue=Decimal("0.1234567890123456789012345678"),
        ),
    )
    extract(company_id, "invoices", RUNS[1], destination=landing)

    with pytest.raises(CodatTableError, match=r"record 'too-fine' of company .* amountDue=") as failure:
        _merge(landing, [company_id], RUNS[1])
    assert "Nothing was merged" in str(failure.value)
    assert DeltaTable(str(table)).version() == version
    assert table_rows(table) == before
    assert not (tmp_path / "codat-data" / "_tables" / "_deleted" / "invoices").exists()  # no tombstone either


def test_a_kill_between_the_tombstones_and_the_table_commit_then_a_retry(
    codat_simulator, extract, landing, tmp_path, monkeypatch
):
    control = codat_simulator.control
    company_id = control.linked_company_ids()[0]
    extract(company_id, "invoices", RUNS[0], destination=landing)
    _merge(landing, [company_id], RUNS[0])
    control.mutate(company_id, "invoices", created=2, modified=3, deleted=2)
    extract(company_id, "invoices", RUNS[1], destination=landing)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed after the tombstones were written")

    with monkeypatch.context() as patched:
        patched.setattr(merge_module, "_execute", killed)
        with pytest.raises(KeyboardInterrupt):
            _merge(landing, [company_id], RUNS[1])
    retried = _merge(landing, [company_id], RUNS[1])
    assert retried.deleted == 2 and retried.inserted == 2 and retried.updated == 3
    _merge(landing, [company_id], RUNS[0])  # and the older run once more: the deleted stay deleted
    assert_table_is_truth(
        table_rows(tmp_path / "codat-data" / "_tables" / "invoices"), truth(control, [company_id], "invoices")
    )


def test_keep_deleted_keeps_them_flagged(codat_simulator, extract, landing, tmp_path):
    control = codat_simulator.control
    company_id = control.linked_company_ids()[0]
    extract(company_id, "invoices", RUNS[0], destination=landing)
    _merge(landing, [company_id], RUNS[0], keep_deleted=True)
    deleted = control.mutate(company_id, "invoices", deleted=2)
    extract(company_id, "invoices", RUNS[1], destination=landing)
    _merge(landing, [company_id], RUNS[1], keep_deleted=True)

    rows = table_rows(tmp_path / "codat-data" / "_tables" / "invoices")
    flagged = {row["id"] for row in rows if row["_codat_deleted"]}
    assert len(flagged) == 2 and all(row["metadata"]["isDeleted"] for row in rows if row["_codat_deleted"])
    assert len(rows) == len(control.records(company_id, "invoices"))
    assert deleted  # the simulator reported what it deleted


def rebuild_snippet() -> str:
    """The python block of docs/tables.md's section on rebuilding a table from the landing."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "tables.md").read_text()
    section = text.split("## Rebuild a table from the landing", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    return code


def test_the_documented_rebuild_from_the_landing_gives_the_same_table(
    codat_simulator, extract, landing, tmp_path
):
    control = codat_simulator.control
    companies = control.linked_company_ids()[:2]
    land_changing_runs(
        control,
        extract,
        companies,
        RUNS,
        landing,
        lambda company_id, run_id: _merge(landing, [company_id], run_id),
    )
    table = tmp_path / "codat-data" / "_tables" / "invoices"
    merged = sorted(table_rows(table), key=lambda row: row["_codat_key"])

    code = rebuild_snippet()
    assert 'Path("/data/codat")' in code
    exec(code.replace('Path("/data/codat")', f'Path("{tmp_path}/codat-data")'), {})
    rebuilt = sorted(table_rows(table), key=lambda row: row["_codat_key"])
    assert_table_is_truth(rebuilt, truth(control, companies, "invoices"))
    assert [row["modifiedDate"] for row in rebuilt] == [row["modifiedDate"] for row in merged]
    assert len(DeltaTable(str(table)).history()) == 1 + len(RUNS)  # created, then one commit per run
