"""Companies deleted at Codat leave the tables and stay out: over a landing written here (no HTTP)."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
import time_machine
from airflow.sdk import Asset, ObjectStoragePath
from deltalake import DeltaTable

from airflow_provider_codat.assets import DELETED_COMPANIES_URI, table_asset
from airflow_provider_codat.errors import CodatValidationError
from airflow_provider_codat.landing.layout import run_folder_name
from airflow_provider_codat.operators.tables import CodatForgetCompaniesOperator
from airflow_provider_codat.tables import merge as merge_module
from airflow_provider_codat.tables.deleted_companies import forget_companies, forgotten_companies
from airflow_provider_codat.tables.merge import merge_runs

GONE, STAYS = "0498e921-9b53-4396-a412-4f2f5983b0a2", "1b5e3c2d-9a8f-4e7d-8c6b-5a4f3e2d1c0b"
TYPES = ("invoices", "payments")


def land(root: Path, company_id: str, data_type: str, run_id: str, records: list[dict], at: str) -> None:
    """One committed run, laid out as the extract lays it out."""
    folder = root / company_id / data_type / run_folder_name(run_id)
    folder.mkdir(parents=True)
    part = folder / "part-00000.jsonl.gz"
    lineage = {"companyId": company_id, "dataType": data_type, "extractedAt": at}
    with gzip.open(part, "wt") as handle:
        handle.writelines(json.dumps({**record, "_codat": lineage}) + "\n" for record in records)
    summary = {"records": len(records), "files": [f"file://{part}"]}
    (folder / "_manifest.json").write_text(json.dumps({"run_id": run_id, "summary": summary}))


def record(number: int, modified: str, deleted: bool = False) -> dict:
    return {"id": f"r-{number}", "modifiedDate": modified, "metadata": {"isDeleted": deleted}}


def land_and_merge(root: Path, run_id: str, modified: str, **kwargs) -> None:
    """Both companies, both types: three live records and one deleted (so tombstones exist)."""
    for data_type in TYPES:
        for company_id in (GONE, STAYS):
            records = [record(n, modified) for n in range(3)] + [record(9, modified, deleted=True)]
            land(root, company_id, data_type, run_id, records, modified.replace("Z", ".000000Z"))
        merge(root, data_type, run_id, **kwargs)


def tables(root: Path) -> ObjectStoragePath:
    return ObjectStoragePath(f"file://{root}/_tables")


def merge(root: Path, data_type: str, run_id: str, **kwargs):
    return merge_runs(
        data_type=data_type, destination=f"file://{root}", company_ids=[GONE, STAYS], run_id=run_id, **kwargs
    )


def rows(root: Path, folder: str) -> list[dict]:
    return DeltaTable(str(root / "_tables" / folder)).to_pyarrow_table().to_pylist()


def companies_in(root: Path, folder: str) -> set[str]:
    return {row["_codat_company_id"] for row in rows(root, folder)}


def versions(root: Path) -> dict[str, int]:
    folders = [*TYPES, *(f"_deleted/{t}" for t in TYPES), "_deleted/_companies"]
    return {folder: DeltaTable(str(root / "_tables" / folder)).version() for folder in folders}


def test_every_table_loses_the_company_and_a_second_time_changes_nothing(tmp_path):
    land_and_merge(tmp_path, "run1", "2026-11-01T00:00:00Z")
    assert companies_in(tmp_path, "_deleted/invoices") == {GONE, STAYS}
    with time_machine.travel(datetime(2026, 12, 1, 9, 0, tzinfo=UTC), tick=False):
        result = forget_companies(
            root=f"file://{tmp_path}/_tables",
            company_ids=[GONE.upper()],  # checked and spelled canonically
            deleted_at={GONE: "2026-11-30T10:00:00Z"},
        )
    assert result.companies == result.recorded == [GONE]
    assert {t: outcome["removed"] for t, outcome in result.tables.items()} == {"invoices": 3, "payments": 3}
    for data_type in TYPES:
        assert companies_in(tmp_path, data_type) == {STAYS}
        assert companies_in(tmp_path, f"_deleted/{data_type}") == {STAYS}
        history = DeltaTable(str(tmp_path / "_tables" / data_type)).history(1)[0]
        assert json.loads(history["codat_forgotten_companies"]) == [GONE]
    assert rows(tmp_path, "_deleted/_companies") == [
        {
            "company_id": GONE,
            "deleted_at": datetime(2026, 11, 30, 10, tzinfo=UTC),
            "forgotten_at": datetime(2026, 12, 1, 9, tzinfo=UTC),
        }
    ]
    before = versions(tmp_path)
    with time_machine.travel(datetime(2026, 12, 2, tzinfo=UTC), tick=False):
        again = forget_companies(root=tables(tmp_path), company_ids=[GONE])  # a retry, a second event
    assert again.recorded == [] and {o["removed"] for o in again.tables.values()} == {0}
    assert versions(tmp_path) == before  # no commit anywhere; the first record stays as it was
    assert rows(tmp_path, "_deleted/_companies")[0]["forgotten_at"] == datetime(2026, 12, 1, 9, tzinfo=UTC)


def test_a_late_merge_of_an_older_run_or_a_newer_one_brings_no_row_back(tmp_path):
    land_and_merge(tmp_path, "run1", "2026-11-02T00:00:00Z")
    for data_type in TYPES:  # an older run of both companies, whose merge failed and is cleared later
        for company_id in (GONE, STAYS):
            land(tmp_path, company_id, data_type, "run0", [record(5, "2026-11-01T00:00:00Z")],
                 "2026-11-01T00:00:00.000000Z")  # fmt: skip
    forget_companies(root=tables(tmp_path), company_ids=[GONE])
    late = merge(tmp_path, "invoices", "run0")
    assert late.forgotten == [f"{GONE}/run=run0"] and late.merged == [f"{STAYS}/run=run0"]
    assert companies_in(tmp_path, "invoices") == {STAYS}
    assert sorted(row["id"] for row in rows(tmp_path, "invoices")) == ["r-0", "r-1", "r-2", "r-5"]
    # The company's last run landed before the deletion, merged after it: left out as well.
    land(
        tmp_path, GONE, "payments", "run2", [record(7, "2026-11-03T00:00:00Z")], "2026-11-03T00:00:00.000000Z"
    )
    assert merge(tmp_path, "payments", "run2").forgotten == [f"{GONE}/run=run2"]
    assert companies_in(tmp_path, "payments") == {STAYS}


def test_a_merge_that_commits_while_the_company_is_forgotten_loses_its_rows_after_the_commit(
    tmp_path, monkeypatch
):
    land_and_merge(tmp_path, "run1", "2026-11-01T00:00:00Z")
    forget_companies(root=tables(tmp_path), company_ids=[GONE])
    land(
        tmp_path, GONE, "invoices", "run2", [record(8, "2026-11-05T00:00:00Z")], "2026-11-05T00:00:00.000000Z"
    )
    # The merge looked at the record just before the company was recorded: it commits the company's rows...
    monkeypatch.setattr(merge_module, "forgotten_companies", lambda root: set())
    result = merge(tmp_path, "invoices", "run2")
    assert result.merged == [f"{GONE}/run=run2"]
    # ...and, looking again after its commit, removes them.
    assert companies_in(tmp_path, "invoices") == {STAYS}


def test_keep_deleted_flags_the_rows_once(tmp_path):
    land_and_merge(tmp_path, "run1", "2026-11-01T00:00:00Z", keep_deleted=True)
    result = forget_companies(root=tables(tmp_path), company_ids=[GONE], keep_deleted=True)
    assert {t: outcome["flagged"] for t, outcome in result.tables.items()} == {"invoices": 3, "payments": 3}
    for data_type in TYPES:
        flags = {
            (row["_codat_company_id"], row["id"]): row["_codat_deleted"] for row in rows(tmp_path, data_type)
        }
        assert flags == {
            **{(GONE, f"r-{n}"): True for n in (0, 1, 2, 9)},
            **{(STAYS, f"r-{n}"): n == 9 for n in (0, 1, 2, 9)},
        }
    before = DeltaTable(str(tmp_path / "_tables" / "invoices")).version()
    again = forget_companies(root=tables(tmp_path), company_ids=[GONE], keep_deleted=True)
    assert again.tables["invoices"] == {
        "table": str(tmp_path / "_tables" / "invoices"),
        "version": before,
        "flagged": 0,
    }


def test_a_bad_id_fails_before_anything_is_written(tmp_path):
    land_and_merge(tmp_path, "run1", "2026-11-01T00:00:00Z")
    before = DeltaTable(str(tmp_path / "_tables" / "invoices")).version()
    with pytest.raises(CodatValidationError, match="company_ids must be a UUID"):
        forget_companies(root=tables(tmp_path), company_ids=[GONE, "../etc"])
    assert not (tmp_path / "_tables" / "_deleted" / "_companies").exists()
    assert DeltaTable(str(tmp_path / "_tables" / "invoices")).version() == before
    assert forgotten_companies(tables(tmp_path)) == set()


def deleted_event(company_id, deleted_at="2026-11-30T10:00:00Z", uri=DELETED_COMPANIES_URI):
    extra = {
        "source": "codat-webhook",
        "webhook_id": "msg_1",
        "company_id": company_id,
        "deleted_at": deleted_at,
    }
    uri = Asset(uri).uri
    return SimpleNamespace(asset=SimpleNamespace(name=uri, uri=uri), extra=extra, source_aliases=[])


def triggering(*events):
    """A run's ``triggering_asset_events`` as Airflow builds them (an Asset is no dict key on Airflow 3.1)."""
    from airflow.sdk.execution_time.context import TriggeringAssetEventsAccessor

    return TriggeringAssetEventsAccessor.build(events)


def test_the_operator_forgets_the_companies_of_its_triggering_events(tmp_path):
    land_and_merge(tmp_path, "run1", "2026-11-01T00:00:00Z")
    operator = CodatForgetCompaniesOperator(
        task_id="forget", destination=f"file://{tmp_path}", outlets=[table_asset("invoices")]
    )
    other = deleted_event(STAYS, uri="codat://invoices")  # another asset's event: not a deletion
    from airflow.sdk.execution_time.context import OutletEventAccessors

    events = triggering(deleted_event(GONE), deleted_event(GONE), other)
    outlet_events = OutletEventAccessors()
    result = operator.execute({"triggering_asset_events": events, "outlet_events": outlet_events})
    assert result["companies"] == [GONE]
    assert companies_in(tmp_path, "invoices") == companies_in(tmp_path, "payments") == {STAYS}
    assert rows(tmp_path, "_deleted/_companies")[0]["deleted_at"] == datetime(2026, 11, 30, 10, tzinfo=UTC)
    extra = outlet_events[table_asset("invoices")].extra
    assert extra["removed"] == 3 and extra["companies"] == [GONE]


@pytest.mark.parametrize(
    ("companies", "events", "message"),
    [
        ("not-a-uuid", [], "companies must be a UUID"),
        (None, [deleted_event("nope")], "company_id of the event of webhook msg_1"),
        (None, [], None),  # no deletion named: nothing to do
    ],
)
def test_the_operator_refuses_a_bad_id_before_any_write(tmp_path, companies, events, message):
    land_and_merge(tmp_path, "run1", "2026-11-01T00:00:00Z")
    before = versions_of_data(tmp_path)
    operator = CodatForgetCompaniesOperator(
        task_id="forget", companies=companies, destination=f"file://{tmp_path}"
    )
    if message:
        with pytest.raises(CodatValidationError, match=message):
            operator.execute({"triggering_asset_events": triggering(*events)})
    else:
        assert operator.execute({"triggering_asset_events": triggering(*events)})["companies"] == []
    assert versions_of_data(tmp_path) == before
    assert not (tmp_path / "_tables" / "_deleted" / "_companies").exists()


def versions_of_data(root: Path) -> dict[str, int]:
    return {t: DeltaTable(str(root / "_tables" / t)).version() for t in TYPES}


def test_the_operator_takes_ids_given_and_templates_its_fields():
    operator = CodatForgetCompaniesOperator(task_id="forget", companies=f"{GONE}, {STAYS}")
    assert set(operator.template_fields) == {"companies", "destination", "tables", "keep_deleted"}
    with pytest.raises(TypeError):
        CodatForgetCompaniesOperator("forget")  # keyword-only
