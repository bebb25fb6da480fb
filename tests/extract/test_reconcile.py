"""Reconcile against the simulator: records Codat drops without a flag leave the landing's current state and the
tables; a partial read concludes nothing; a record that returns is live again; retries and kills land once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import duckdb
import pytest

from airflow_provider_codat.extract import reconcile as reconcile_module
from airflow_provider_codat.extract.landed import current_versions
from airflow_provider_codat.extract.reconcile import reconcile_type
from airflow_provider_codat.extract.request import ExtractRequest
from airflow_provider_codat.hooks.codat import CodatHook
from airflow_provider_codat.landing.layout import reconcile_run_id
from airflow_provider_codat.tables.merge import merge_runs
from airflow_provider_codat.values import CompanyId
from tests.extract.conftest import read_records, run_records
from tests.extract.test_duckdb_recipe import recipe_sql
from tests.tables.conftest import table_rows

BANKING = "banking-transactions"


@pytest.fixture
def reconcile(codat_simulator, monkeypatch, tmp_path) -> Callable[..., dict]:
    """Run ``reconcile_type`` for the extract fixture's destination."""
    monkeypatch.setenv("AIRFLOW_CONN_CODAT_DEFAULT", codat_simulator.connection_json)

    def run(company_id: str, data_type: str, run_id: str, **kwargs: Any) -> dict:
        request = ExtractRequest.for_run(
            company_id=CompanyId.parse(company_id, "company_id"),
            data_type=data_type,
            destination=f"file://{tmp_path}/out",
            run_id=run_id,
        )
        with CodatHook() as hook:
            return reconcile_type(hook, request, **kwargs)

    return run


def live_ids(folder) -> dict[str, set[str]]:
    """Per scope, the ids live in the landing's current state."""
    return {
        scope: {ident for ident, version in versions.items() if not version.deleted}
        for scope, versions in current_versions(folder).items()
    }


def codat_ids(control, company_id: str, data_type: str, connection_id: str, account_id: str | None = None):
    return {r["id"] for r in control.records(company_id, data_type, connection_id, account_id)}


def test_dropped_records_leave_the_landing_and_the_tables(
    codat_simulator, company, extract, reconcile, out, tmp_path
):
    control = codat_simulator.control
    connection = control.connection_id(company, "Banking")
    folder = out(company, BANKING)
    extract(company, BANKING, "run1")
    dropped = control.mutate(company, BANKING, created=2, modified=1, deleted=3)["deleted"]
    extract(company, BANKING, "run2")
    assert set(dropped) <= live_ids(folder)[connection]  # the incremental read cannot see them go

    summary = reconcile(company, BANKING, "run2")
    assert summary["tombstoned"] == 3 and summary["returned"] == 0 and summary["failed_scopes"] == {}
    assert live_ids(folder) == {connection: codat_ids(control, company, BANKING, connection)}
    tombstones = run_records(folder, run_folder_name_of("run2"))
    assert sorted(t["id"] for t in tombstones) == sorted(dropped)
    for tombstone in tombstones:
        assert tombstone["metadata"] == {"isDeleted": True}
        assert tombstone["_codat"]["reconciledAt"] == tombstone["_codat"]["extractedAt"]
        assert tombstone["_codat"]["connectionId"] == connection

    landing = f"file://{tmp_path}/out"
    for run_id in ("run1", "run2"):  # the merge of run2 takes its reconcile with it
        merge_runs(data_type=BANKING, destination=landing, company_ids=[company], run_id=run_id)
    rows = table_rows(tmp_path / "out" / "_tables" / BANKING)
    assert {row["id"] for row in rows} == codat_ids(control, company, BANKING, connection)
    # The spec gives these records no metadata: the tombstones widened the table, null in every live row.
    assert {row["metadata"] for row in rows} == {None}


def run_folder_name_of(run_id: str) -> str:
    from airflow_provider_codat.landing.layout import run_folder_name

    return run_folder_name(reconcile_run_id(run_id)).removeprefix("run=")


def test_a_record_that_returns_is_live_again_in_the_landing_and_the_tables(
    codat_simulator, company, extract, reconcile, out, tmp_path
):
    control = codat_simulator.control
    connection = control.connection_id(company, "Banking")
    folder = out(company, BANKING)
    extract(company, BANKING, "run1")
    gone = control.records(company, BANKING, connection)[0]
    control.remove_record(company, BANKING, gone["id"], connection)
    control.mutate(company, BANKING, modified=1)  # a sync, so that the next reconcile is not skipped
    extract(company, BANKING, "run2")
    assert reconcile(company, BANKING, "run2")["tombstoned"] == 1
    assert gone["id"] not in live_ids(folder)[connection]

    control.put_record(company, BANKING, gone, connection)  # back, its modifiedDate unchanged
    control.mutate(company, BANKING, modified=1)
    extract(company, BANKING, "run3")  # below the watermark: the incremental read does not see it
    summary = reconcile(company, BANKING, "run3")
    assert summary["returned"] == 1 and summary["tombstoned"] == 0
    assert live_ids(folder) == {connection: codat_ids(control, company, BANKING, connection)}

    landing = f"file://{tmp_path}/out"
    for run_id in ("run1", "run2", "run3"):
        merge_runs(data_type=BANKING, destination=landing, company_ids=[company], run_id=run_id)
    rows = table_rows(tmp_path / "out" / "_tables" / BANKING)
    assert gone["id"] in {row["id"] for row in rows}
    assert {row["id"] for row in rows} == codat_ids(control, company, BANKING, connection)


def test_a_fault_in_the_middle_of_a_full_read_deletes_nothing(
    codat_simulator, company, extract, reconcile, out
):
    control = codat_simulator.control
    folder = out(company, BANKING)
    extract(company, BANKING, "run1")
    control.mutate(company, BANKING, deleted=2)
    before = live_ids(folder)
    control.add_fault("link_skip", path=BANKING, after_page=2, times=None)
    summary = reconcile(company, BANKING, "run2", page_size=10)
    assert summary["tombstoned"] == 0 and list(summary["failed_scopes"]) == list(before)
    assert live_ids(folder) == before and run_records(folder, run_folder_name_of("run2")) == []
    # Not marked reconciled: the next run reads again, although no sync completed since.
    control.clear_faults()
    again = reconcile(company, BANKING, "run3", page_size=10)
    assert again["status"] == "reconciled" and again["tombstoned"] == 2


def test_a_bank_account_is_emptied_only_when_codat_confirms_it_is_gone(
    codat_simulator, company, extract, reconcile, out
):
    control = codat_simulator.control
    connection = control.connection_id(company)
    folder = out(company, "bankTransactions")
    extract(company, "bankTransactions", "run1")
    accounts = control.bank_account_ids(company, connection)
    landed = live_ids(folder)
    # A listing hiccup: Codat lists no account at all. Every account is read, each answers: nothing changes.
    control.add_fault(
        "malformed",
        path="bankAccounts$",
        body={"results": [], "pageNumber": 1, "pageSize": 100, "totalResults": 0, "_links": {}},
    )
    control.mutate(company, "bankTransactions", modified=1)
    hiccup = reconcile(company, "bankTransactions", "run2")
    assert hiccup["tombstoned"] == 0 and hiccup["gone_scopes"] == [] and hiccup["failed_scopes"] == {}
    assert live_ids(folder) == landed

    control.remove_record(company, "bankAccounts", accounts[0], connection)  # gone: its transactions 404
    control.mutate(company, "bankTransactions", modified=1)
    extract(company, "bankTransactions", "run3")
    summary = reconcile(company, "bankTransactions", "run3")
    assert summary["gone_scopes"] == [f"{connection}/{accounts[0]}"]
    assert summary["tombstoned"] == len(landed[f"{connection}/{accounts[0]}"])
    assert live_ids(folder)[f"{connection}/{accounts[0]}"] == set()
    for account in accounts[1:]:
        key = f"{connection}/{account}"
        assert live_ids(folder)[key] == codat_ids(control, company, "bankTransactions", connection, account)


def test_no_sync_since_the_last_reconcile_skips_it_without_a_request(
    codat_simulator, company, extract, reconcile
):
    control = codat_simulator.control
    extract(company, BANKING, "run1")
    control.mutate(company, BANKING, deleted=1)
    assert reconcile(company, BANKING, "run1")["tombstoned"] == 1
    control.reset_request_log()
    status = {"latestSuccessfulSyncId": None}
    skipped = reconcile(company, BANKING, "run2", status=None)
    assert skipped["status"] == "skipped" and "since the last reconcile" in skipped["reason"]
    assert [entry["path"].rsplit("/", 1)[-1] for entry in control.request_log()] == ["dataStatus"]
    assert reconcile(company, BANKING, "run3", status=status)["status"] == "skipped"


def test_a_retried_or_killed_reconcile_lands_each_tombstone_once(
    codat_simulator, company, extract, reconcile, out, monkeypatch
):
    control = codat_simulator.control
    folder = out(company, BANKING)
    extract(company, BANKING, "run1")
    dropped = control.mutate(company, BANKING, deleted=2)["deleted"]

    def killed(*args, **kwargs):
        raise SystemExit("worker killed")

    with pytest.MonkeyPatch.context() as patch, pytest.raises(SystemExit):
        patch.setattr(reconcile_module, "save_state", killed)  # killed just before the commit
        reconcile(company, BANKING, "run2")
    assert run_records(folder, run_folder_name_of("run2")) == []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reconcile_module, "publish", lambda folder, state: state)  # killed just after it
        first = reconcile(company, BANKING, "run2")
    retried = reconcile(company, BANKING, "run2")  # finishes the publication, returns the committed summary
    assert retried == first and retried["tombstoned"] == 2
    assert reconcile(company, BANKING, "run2") == first  # and again, Codat unread
    later = reconcile(company, BANKING, "run3", status={"latestSuccessfulSyncId": "another"})
    assert later["tombstoned"] == 0
    tombstones = [r for r in read_records(folder) if "reconciledAt" in r["_codat"]]
    assert sorted(r["id"] for r in tombstones) == sorted(dropped)


def test_the_duckdb_recipe_drops_the_tombstones_and_keeps_a_record_that_returned(
    codat_simulator, company, extract, reconcile, tmp_path, monkeypatch
):
    control = codat_simulator.control
    connection = control.connection_id(company, "Banking")
    extract(company, BANKING, "run1")
    back = control.records(company, BANKING, connection)[0]
    control.remove_record(company, BANKING, back["id"], connection)
    control.mutate(company, BANKING, deleted=2)
    extract(company, BANKING, "run2")
    assert reconcile(company, BANKING, "run2")["tombstoned"] == 3
    control.put_record(company, BANKING, back, connection)
    control.mutate(company, BANKING, modified=1)
    extract(company, BANKING, "run3")
    assert reconcile(company, BANKING, "run3")["returned"] == 1

    sql = recipe_sql().replace("/invoices/", f"/{BANKING}/")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "codat-data").symlink_to(tmp_path / "out")
    with duckdb.connect() as db:
        db.execute(sql)
        ids = {row[0] for row in db.execute("SELECT CAST(id AS VARCHAR) FROM invoices").fetchall()}
    assert back["id"] in ids and ids == codat_ids(control, company, BANKING, connection)


def test_a_type_read_whole_is_reconciled_from_its_own_run_without_a_request(
    codat_simulator, company, extract, reconcile, out, tmp_path
):
    products = "commerce-products"
    control = codat_simulator.control
    connection = control.connection_id(company, "Commerce")
    folder = out(company, products)
    extract(company, products, "run1")
    gone = control.records(company, products, connection)[0]
    control.remove_record(company, products, gone["id"], connection)
    control.mutate(company, products, modified=1)  # a sync since: the reconcile is not skipped
    extract(company, products, "run2")
    assert gone["id"] in live_ids(folder)[connection]  # the earlier run still shows it

    control.reset_request_log()
    summary = reconcile(company, products, "run2", status={"latestSuccessfulSyncId": "s2"})
    assert control.request_count() == 0  # the run's own whole read is what Codat holds
    assert summary["tombstoned"] == 1 and summary["failed_scopes"] == {}
    assert live_ids(folder) == {connection: codat_ids(control, company, products, connection)}

    landing = f"file://{tmp_path}/out"
    for run_id in ("run1", "run2"):
        merge_runs(data_type=products, destination=landing, company_ids=[company], run_id=run_id)
    rows = table_rows(tmp_path / "out" / "_tables" / products)
    assert {row["id"] for row in rows} == codat_ids(control, company, products, connection)

    # Back in Codat: the next run's read lands it again, newer than the tombstone.
    control.put_record(company, products, gone, connection)
    extract(company, products, "run3")
    assert gone["id"] in live_ids(folder)[connection]


def test_a_type_read_whole_concludes_nothing_without_its_committed_run(
    codat_simulator, company, extract, reconcile, out
):
    products = "commerce-products"
    control = codat_simulator.control
    folder = out(company, products)
    extract(company, products, "run1")
    connection = control.connection_id(company, "Commerce")
    control.remove_record(
        company, products, control.records(company, products, connection)[0]["id"], connection
    )
    before = live_ids(folder)
    summary = reconcile(company, products, "run2", status={"latestSuccessfulSyncId": "s2"})  # run2 never ran
    assert summary["status"] == "skipped" and live_ids(folder) == before
