"""The merge, maintenance and storage pieces over a landing written here (no HTTP): concurrency, retention,
misfits, where tables live."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from airflow.sdk import ObjectStoragePath
from deltalake import DeltaTable

from airflow_provider_codat.errors import CodatTableError
from airflow_provider_codat.extract.layout import run_folder_name
from airflow_provider_codat.operators.tables import companies_of
from airflow_provider_codat.tables import fast
from airflow_provider_codat.tables.maintenance import maintain_tables
from airflow_provider_codat.tables.merge import merge_runs
from airflow_provider_codat.tables.schema import record_fields
from airflow_provider_codat.tables.storage import delta_location, tables_root

COMPANIES = [f"{n:08x}-0000-4000-8000-000000000000" for n in range(3)]


def land(root: Path, company_id: str, run_id: str, records: list[dict], extracted_at: str) -> None:
    """One committed run of invoices, laid out as the extract lays it out."""
    folder = root / company_id / "invoices" / run_folder_name(run_id)
    folder.mkdir(parents=True)
    part = folder / "part-00000.jsonl.gz"
    lineage = {"companyId": company_id, "dataType": "invoices", "extractedAt": extracted_at}
    with gzip.open(part, "wt") as handle:
        handle.writelines(json.dumps({**record, "_codat": lineage}) + "\n" for record in records)
    summary = {"records": len(records), "files": [f"file://{part}"]}
    (folder / "_manifest.json").write_text(json.dumps({"run_id": run_id, "summary": summary}))


def invoice(number: int, modified: str = "2026-11-01T00:00:00Z", **values) -> dict:
    return {"id": f"inv-{number}", "modifiedDate": modified, "metadata": {"isDeleted": False}, **values}


def _merge(root: Path, run_id: str, companies=COMPANIES, **kwargs):
    return merge_runs(
        data_type="invoices", destination=f"file://{root}", company_ids=companies, run_id=run_id, **kwargs
    )


def test_concurrent_writers_both_land_and_nothing_doubles(tmp_path):
    for index, company_id in enumerate(
        COMPANIES
    ):  # the racing two each widen the table by a field of their own
        refs = [{"id": f"c-{n}", f"added{index}": n} if index else None for n in range(20)]
        records = [invoice(n, customerRef=refs[n]) for n in range(20)]
        land(tmp_path, company_id, "run1", records, "2026-11-01T01:00:00.000000Z")
    _merge(tmp_path, "run1", COMPANIES[:1])  # the table exists; the others race into it
    errors = []

    def merge(company_id: str) -> None:
        try:
            _merge(tmp_path, "run1", [company_id])
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [
        threading.Thread(target=merge, args=(company_id,)) for company_id in COMPANIES[1:3] * 2
    ]  # two writers of each run
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    rows = DeltaTable(str(tmp_path / "_tables" / "invoices")).to_pyarrow_table().to_pylist()
    assert sorted(row["_codat_key"] for row in rows) == sorted(
        f"{company_id}///inv-{n}" for company_id in COMPANIES for n in range(20)
    )
    for row in rows:
        index = COMPANIES.index(row["_codat_company_id"])
        if index:
            assert row["customerRef"][f"added{index}"] == row["id"].removeprefix("inv-")


def test_maintenance_compacts_and_vacuums_within_the_retention(tmp_path):
    for number in range(4):  # four merges: four versions, small files
        run_id = f"run{number}"
        records = [invoice(n, f"2026-11-0{number + 1}T00:00:00Z", amountDue=number) for n in range(10)]
        land(tmp_path, COMPANIES[0], run_id, records, f"2026-11-0{number + 1}T01:00:00.000000Z")
        _merge(tmp_path, run_id)
    table = tmp_path / "_tables" / "invoices"
    before = DeltaTable(str(table)).to_pyarrow_table().sort_by("_codat_key")

    kept = maintain_tables(tables_root(f"file://{tmp_path}"), retention=timedelta(days=7))
    assert [entry["vacuumed"] for entry in kept] == [0]  # nothing older than a week: time travel intact
    done = maintain_tables(tables_root(f"file://{tmp_path}"), retention=timedelta(0))
    assert done[0]["table"].endswith("/_tables/invoices") and done[0]["vacuumed"] > 0
    assert len(DeltaTable(str(table)).file_uris()) == 1
    assert len(list(table.rglob("*.parquet"))) == 1  # the old files are gone from storage
    assert DeltaTable(str(table)).to_pyarrow_table().sort_by("_codat_key").equals(before)
    with pytest.raises(ValueError, match="retention must not be negative"):
        maintain_tables(tables_root(f"file://{tmp_path}"), retention=timedelta(hours=-1))


def test_fields_added_inside_structs_widen_them_and_rows_copied_unchanged_keep_theirs(tmp_path):
    line = {"unitAmount": 1.5, "accountRef": {"id": "a-1", "name": "Sales"}}
    land(
        tmp_path,
        COMPANIES[0],
        "run1",
        [invoice(n, customerRef={"id": f"c-{n}"}, lineItems=[line]) for n in range(4)],
        "2026-11-01T01:00:00Z",
    )
    _merge(tmp_path, "run1")
    wider_line = {
        **line,
        "accountRef": {**line["accountRef"], "nominalCode": "4000"},
        "serviceDate": "2026-11-02",
    }
    wider = invoice(
        1, "2026-11-05T00:00:00Z", customerRef={"id": "c-1", "region": {"code": "EU"}}, lineItems=[wider_line]
    )
    land(tmp_path, COMPANIES[0], "run2", [wider], "2026-11-05T01:00:00Z")
    _merge(tmp_path, "run2")
    narrower = invoice(
        2, "2026-11-06T00:00:00Z", customerRef={"id": "c-2b"}, lineItems=[line]
    )  # the fast path
    land(tmp_path, COMPANIES[0], "run3", [narrower], "2026-11-06T01:00:00Z")
    _merge(tmp_path, "run3")

    rows = {
        row["id"]: row
        for row in DeltaTable(str(tmp_path / "_tables" / "invoices")).to_pyarrow_table().to_pylist()
    }
    assert rows["inv-1"]["customerRef"]["region"] == '{"code":"EU"}'
    assert rows["inv-1"]["lineItems"][0]["accountRef"]["nominalCode"] == "4000"
    assert rows["inv-1"]["lineItems"][0]["serviceDate"] == "2026-11-02"
    assert rows["inv-2"]["customerRef"] == {"id": "c-2b", "companyName": None, "region": None}
    for untouched in ("inv-0", "inv-3"):  # rewritten by the merges, never changed
        assert rows[untouched]["customerRef"]["id"] == f"c-{untouched[-1]}"
        assert rows[untouched]["lineItems"][0]["accountRef"] == {
            "id": "a-1",
            "name": "Sales",
            "nominalCode": None,
        }
        assert str(rows[untouched]["lineItems"][0]["unitAmount"]).rstrip("0") == "1.5"
    maintain_tables(
        tables_root(f"file://{tmp_path}"), retention=timedelta(0)
    )  # files of both schemas compacted
    compacted = DeltaTable(str(tmp_path / "_tables" / "invoices")).to_pyarrow_table().to_pylist()
    assert {row["id"]: row for row in compacted} == rows


def test_a_field_the_table_holds_as_text_and_the_spec_now_types_asks_for_a_rebuild(tmp_path, monkeypatch):
    land(tmp_path, COMPANIES[0], "run1", [invoice(1, addedLater="12.50")], "2026-11-01T01:00:00Z")
    _merge(tmp_path, "run1")  # not in the spec: a text column
    version = DeltaTable(str(tmp_path / "_tables" / "invoices")).version()
    typed = [*record_fields("invoices"), ("addedLater", "decimal")]  # a newer spec types it
    monkeypatch.setattr("airflow_provider_codat.tables.fast.record_fields", lambda data_type: typed)
    monkeypatch.setattr("airflow_provider_codat.tables.rows.record_fields", lambda data_type: typed)
    later = [invoice(1, "2026-11-02T00:00:00Z", addedLater=13)]
    land(tmp_path, COMPANIES[0], "run2", later, "2026-11-02T01:00:00Z")
    fast._read_schema.cache_clear()
    try:
        with pytest.raises(CodatTableError, match=r"addedLater.*Rebuild the table from the landing"):
            _merge(tmp_path, "run2")
    finally:
        fast._read_schema.cache_clear()  # the shipped spec again for the other tests
    assert DeltaTable(str(tmp_path / "_tables" / "invoices")).version() == version  # nothing committed


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("amountDue", "twelve", "amountDue='twelve'"),
        ("amountDue", "NaN", "amountDue='NaN'"),
        ("issueDate", "next Tuesday", "issueDate='next Tuesday'"),
        ("lineItems", {"not": "a list"}, "lineItems="),
        ("modifiedDate", "2026-02-30T00:00:00Z", "modifiedDate='2026-02-30T00:00:00Z'"),
    ],
)
def test_a_misfit_names_the_record_and_field_and_commits_nothing(tmp_path, field, value, expected):
    land(tmp_path, COMPANIES[0], "run1", [invoice(1), invoice(2, **{field: value})], "2026-11-01T01:00:00Z")
    with pytest.raises(CodatTableError, match=rf"record 'inv-2' of company {COMPANIES[0]} has {expected}"):
        _merge(tmp_path, "run1")
    assert not (tmp_path / "_tables").exists()


def test_a_table_folder_of_its_own_and_companies_from_the_work_items(tmp_path):
    land(tmp_path, COMPANIES[0], "run1", [invoice(1)], "2026-11-01T01:00:00Z")
    result = _merge(tmp_path, "run1", tables=f"file://{tmp_path}/lake")
    assert result.table == f"{tmp_path}/lake/invoices" and result.inserted == 1
    work = [{"company_id": COMPANIES[0], "destination": "file:///d"}, {"company_id": COMPANIES[1:3]}]
    assert companies_of(work) == (COMPANIES[:3], "file:///d")
    assert companies_of(f"{COMPANIES[0]}, {COMPANIES[0]}") == (COMPANIES[:1], None)
    with pytest.raises(ValueError, match="companies"):
        companies_of(["not-a-uuid"])


def test_local_tables_open_by_path(tmp_path):
    local = ObjectStoragePath(f"file://{tmp_path}/_tables/invoices")
    assert delta_location(local) == (f"{tmp_path}/_tables/invoices", {})


_MERGE_IN_A_PROCESS = """
import sys
from pathlib import Path
from tests.tables.test_merge_local import _merge
_merge(Path(sys.argv[1]), "run1", [sys.argv[2]])
"""


def test_writer_processes_racing_and_one_killed_mid_merge_end_with_every_row_once(tmp_path):
    root = Path(__file__).resolve().parents[2]
    for index, company_id in enumerate(COMPANIES):  # each widens the table by a nested field of its own
        records = [invoice(n, customerRef={"id": f"c-{n}", f"added{index}": n}) for n in range(50)]
        land(tmp_path, company_id, "run1", records, "2026-11-01T01:00:00.000000Z")

    def writer(company_id: str) -> subprocess.Popen:
        command = [sys.executable, "-c", _MERGE_IN_A_PROCESS, str(tmp_path), company_id]
        return subprocess.Popen(command, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    killed = writer(COMPANIES[0])
    racing = [writer(company_id) for company_id in COMPANIES[1:] * 2]  # two processes per run
    time.sleep(3)  # past the imports, into the merge, or done: either way nothing may be lost or doubled
    killed.kill()
    for process in racing:
        assert process.wait(timeout=300) == 0, process.stderr.read().decode()
    killed.wait(timeout=30)
    _merge(tmp_path, "run1", [COMPANIES[0]])  # the killed task's retry

    rows = DeltaTable(str(tmp_path / "_tables" / "invoices")).to_pyarrow_table().to_pylist()
    assert sorted(row["_codat_key"] for row in rows) == sorted(
        f"{company_id}///inv-{n}" for company_id in COMPANIES for n in range(50)
    )
    for row in rows:
        index = COMPANIES.index(row["_codat_company_id"])
        assert row["customerRef"][f"added{index}"] == row["id"].removeprefix("inv-")
