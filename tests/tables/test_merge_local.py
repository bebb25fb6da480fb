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

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from airflow.sdk import ObjectStoragePath
from deltalake import DeltaTable

from airflow_provider_codat.errors import CodatTableError
from airflow_provider_codat.landing.layout import run_folder_name
from airflow_provider_codat.operators.tables import companies_of
from airflow_provider_codat.tables import commits, key, merge, part_reader
from airflow_provider_codat.tables.commits import RUNS_KEY, held_runs, month_groups
from airflow_provider_codat.tables.key import MONTH
from airflow_provider_codat.tables.location import delta_location, tables_root
from airflow_provider_codat.tables.maintenance import maintain_tables
from airflow_provider_codat.tables.merge import PART_KEY, merge_runs
from airflow_provider_codat.tables.schema import record_fields

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
    monkeypatch.setattr("airflow_provider_codat.tables.part_reader.record_fields", lambda data_type: typed)
    monkeypatch.setattr("airflow_provider_codat.tables.rows.record_fields", lambda data_type: typed)
    later = [invoice(1, "2026-11-02T00:00:00Z", addedLater=13)]
    land(tmp_path, COMPANIES[0], "run2", later, "2026-11-02T01:00:00Z")
    part_reader._read_schema.cache_clear()
    try:
        with pytest.raises(CodatTableError, match=r"addedLater.*Rebuild the table from the landing"):
            _merge(tmp_path, "run2")
    finally:
        part_reader._read_schema.cache_clear()  # the shipped spec again for the other tests
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


@pytest.mark.slow
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


def _two_months_then_a_change_in_three(root: Path) -> None:
    """Invoices first landed in October and November, then a run (December) changing both months and adding
    one, deleting another."""
    company_id = COMPANIES[0]
    land(root, company_id, "oct", [invoice(n) for n in range(4)], "2026-10-05T00:00:00.000000Z")
    land(root, company_id, "nov", [invoice(n) for n in range(4, 8)], "2026-11-05T00:00:00.000000Z")
    _merge(root, "oct", [company_id])
    _merge(root, "nov", [company_id])
    gone = invoice(2, "2026-12-01T00:00:00Z", metadata={"isDeleted": True})
    changes = [invoice(n, "2026-12-01T00:00:00Z", note="paid") for n in (1, 5)] + [invoice(9), gone]
    land(root, company_id, "dec", changes, "2026-12-05T00:00:00.000000Z")


def _months_and_notes(root: Path) -> dict[str, tuple[str, str | None]]:
    rows = DeltaTable(str(root / "_tables" / "invoices")).to_pyarrow_table().to_pylist()
    assert len(rows) == len({row["id"] for row in rows}), "a record holds two rows"
    return {row["id"]: (row["_codat_month"], row["note"]) for row in rows}


EXPECTED_AFTER_DECEMBER = {
    **{f"inv-{n}": ("2026-10", None) for n in (0, 3)},
    "inv-1": ("2026-10", "paid"),  # updated where it lives
    **{f"inv-{n}": ("2026-11", None) for n in (4, 6, 7)},
    "inv-5": ("2026-11", "paid"),
    "inv-9": ("2026-12", None),  # new: the month it landed in
}


def test_months_group_by_their_files_size(tmp_path):
    _two_months_then_a_change_in_three(tmp_path)
    table = DeltaTable(str(tmp_path / "_tables" / "invoices"))
    months = ["2026-12", "2026-10", "2026-11"]
    assert month_groups(table, months) == [["2026-10", "2026-11", "2026-12"]]  # a few KB: one MERGE
    assert month_groups(table, months, limit=1) == [["2026-10"], ["2026-11"], ["2026-12"]]
    sizes = {
        month: sum(
            action["size_bytes"]
            for action in pa.table(table.get_add_actions(flatten=True)).to_pylist()
            if action[f"partition.{MONTH}"] == month
        )
        for month in ("2026-10", "2026-11")
    }
    both = sizes["2026-10"] + sizes["2026-11"]
    assert month_groups(table, months, limit=both) == [
        ["2026-10", "2026-11", "2026-12"]
    ]  # December: no files
    assert month_groups(table, months, limit=both - 1) == [["2026-10"], ["2026-11", "2026-12"]]


def test_a_batch_over_the_limit_commits_a_few_months_at_a_time_and_the_last_commit_records_the_run(
    tmp_path, monkeypatch
):
    _two_months_then_a_change_in_three(tmp_path)
    monkeypatch.setattr(commits, "MERGE_BYTES", 1)  # one month per MERGE
    before = DeltaTable(str(tmp_path / "_tables" / "invoices")).version()
    result = _merge(tmp_path, "dec", COMPANIES[:1])
    assert (result.inserted, result.updated, result.deleted) == (1, 2, 1)  # summed over the commits
    table = DeltaTable(str(tmp_path / "_tables" / "invoices"))
    assert table.version() == result.version == before + 3
    delta_commits = list(reversed(table.history()))[-3:]
    assert [commit[PART_KEY] for commit in delta_commits] == ["1/3", "2/3", "3/3"]
    assert [RUNS_KEY in commit for commit in delta_commits] == [False, False, True]
    assert _months_and_notes(tmp_path) == EXPECTED_AFTER_DECEMBER


def test_a_merge_killed_between_its_commits_is_merged_again_in_full(tmp_path, monkeypatch):
    _two_months_then_a_change_in_three(tmp_path)
    monkeypatch.setattr(commits, "MERGE_BYTES", 1)
    run_once = merge._execute
    calls = []

    def killed_after_the_first_commit(*args, **kwargs):
        if calls:
            raise KeyboardInterrupt  # the worker killed: nothing after this point runs
        calls.append(1)
        return run_once(*args, **kwargs)

    monkeypatch.setattr(merge, "_execute", killed_after_the_first_commit)
    with pytest.raises(KeyboardInterrupt):
        _merge(tmp_path, "dec", COMPANIES[:1])
    table = DeltaTable(str(tmp_path / "_tables" / "invoices"))
    assert (COMPANIES[0], "run=dec") not in held_runs(table)  # October committed, the run not recorded
    monkeypatch.setattr(merge, "_execute", run_once)

    retried = _merge(tmp_path, "dec", COMPANIES[:1])  # the task's retry
    assert retried.merged == [f"{COMPANIES[0]}/run=dec"] and retried.already_held == []
    assert (retried.updated, retried.deleted, retried.inserted) == (1, 0, 1)  # October's changes already in
    assert _months_and_notes(tmp_path) == EXPECTED_AFTER_DECEMBER
    again = _merge(tmp_path, "dec", COMPANIES[:1])
    assert again.already_held == [f"{COMPANIES[0]}/run=dec"] and again.merged == []


def test_keys_whose_digests_collide_across_months_merge_in_one_commit_and_nothing_doubles(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(key, "_digest", lambda _: 7)  # every key the same digest: found in both months
    monkeypatch.setattr(commits, "MERGE_BYTES", 1)  # would be one month per MERGE
    _two_months_then_a_change_in_three(tmp_path)
    before = DeltaTable(str(tmp_path / "_tables" / "invoices")).version()
    result = _merge(tmp_path, "dec", COMPANIES[:1])
    assert result.version == before + 1  # every month a digest is in, in the one MERGE
    assert (result.inserted, result.updated, result.deleted) == (1, 2, 1)
    notes = {name: note for name, (_, note) in _months_and_notes(tmp_path).items()}
    assert notes == {name: note for name, (_, note) in EXPECTED_AFTER_DECEMBER.items()}


_MERGE_MONTH_BY_MONTH_IN_A_PROCESS = """
import sys
from pathlib import Path
from airflow_provider_codat.tables import commits
from tests.tables.test_merge_local import _merge
commits.MERGE_BYTES = 1  # one month per MERGE: three commits
_merge(Path(sys.argv[1]), "dec", [sys.argv[2]])
"""


@pytest.mark.slow
def test_processes_merging_month_by_month_one_killed_between_commits_end_exact(tmp_path):
    _two_months_then_a_change_in_three(tmp_path)
    root = Path(__file__).resolve().parents[2]

    def writer() -> subprocess.Popen:
        command = [sys.executable, "-c", _MERGE_MONTH_BY_MONTH_IN_A_PROCESS, str(tmp_path), COMPANIES[0]]
        return subprocess.Popen(command, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    killed, racing = writer(), [writer(), writer()]  # the same run, as a retry racing a clear would
    table = tmp_path / "_tables" / "invoices"
    before = DeltaTable(str(table)).version()
    deadline = time.monotonic() + 120
    while DeltaTable(str(table)).version() == before and time.monotonic() < deadline:
        time.sleep(0.05)  # the first commit of some writer: kill one now, mid-merge
    killed.kill()
    for process in racing:
        assert process.wait(timeout=300) == 0, process.stderr.read().decode()
    killed.wait(timeout=30)
    _merge(tmp_path, "dec", COMPANIES[:1])  # the killed task's retry: held already, or merged now

    assert _months_and_notes(tmp_path) == EXPECTED_AFTER_DECEMBER
    assert (COMPANIES[0], "run=dec") in held_runs(DeltaTable(str(table)))


def test_merges_write_compressed_parquet(tmp_path):
    land(tmp_path, COMPANIES[0], "run1", [invoice(n) for n in range(10)], "2026-11-01T01:00:00.000000Z")
    _merge(tmp_path, "run1", COMPANIES[:1])
    files = list((tmp_path / "_tables" / "invoices").rglob("*.parquet"))
    assert files
    for file in files:
        metadata = pq.ParquetFile(file).metadata
        codecs = {metadata.row_group(0).column(index).compression for index in range(metadata.num_columns)}
        assert codecs == {"SNAPPY"}, f"{file.name}: {codecs}"
