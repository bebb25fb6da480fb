"""CodatExtractOperator against the simulator over real HTTP, writing to ``file://`` in a tmp dir.

Every check compares the (scope, id, modifiedDate) versions written with the simulator's records.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from airflow_provider_codat.datatypes import CATALOGUE, Kind, Scope
from airflow_provider_codat.errors import CodatDataNotSyncedError
from airflow_provider_codat.extract import run as extract_run
from airflow_provider_codat.extract.writer import PartWriter
from tests.extract.conftest import read_records, run_records, truth, versions
from tests.moments import MOMENTS


def test_first_run_then_changes_then_exactly_the_changes(codat_simulator, company, extract, out):
    control = codat_simulator.control
    folder = out(company, "invoices")
    first = extract(company, "invoices", "run1", page_size=7)
    assert set(versions(read_records(folder))) == truth(control, company, "invoices")
    assert first["records"] == len(truth(control, company, "invoices")) and first["watermark_from"] is None
    # Keyset pages overlap at their boundary instant (the record there is read again and skipped).
    assert -(-first["records"] // 7) <= first["pages"] <= -(-first["records"] // 6)

    changed = control.mutate(company, "invoices", created=3, modified=4, deleted=2)
    second = extract(company, "invoices", "run2", page_size=7)
    new = run_records(folder, "run2")
    expected_ids = set(changed["created"]) | set(changed["modified"]) | set(changed["deleted"])
    assert {r["id"] for r in new} == expected_ids and len(new) == 9
    assert {r["modifiedDate"] for r in new} == {changed["modifiedDate"]}
    assert {r["id"] for r in new if r["metadata"]["isDeleted"]} == set(changed["deleted"])
    assert second["deleted"] == 2 and second["watermark_from"] == first["watermark_to"]
    assert second["watermark_to"] == changed["modifiedDate"]
    # Across both runs: every version once, nothing else.
    written = versions(read_records(folder))
    assert len(written) == len(set(written))
    assert set(written) - set(versions(run_records(folder, "run1"))) == {
        v for v in truth(control, company, "invoices") if v[3] == changed["modifiedDate"]
    }
    assert new[0]["_codat"]["companyId"] == company and new[0]["_codat"]["dataType"] == "invoices"
    assert "extractedAt" in new[0]["_codat"] and "connectionId" not in new[0]["_codat"]

    state = json.loads((folder / "_state.json").read_text())
    assert state["last_run"]["run_id"] == "run2"
    assert state["cursors"][""]["watermark"] == changed["modifiedDate"]
    assert sorted(state["cursors"][""]["ids_at_watermark"]) == sorted(expected_ids)


def test_versions_sharing_the_watermark_instant(codat_simulator, company, extract, out, monkeypatch):
    control = codat_simulator.control
    instant = datetime(2026, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)
    monkeypatch.setattr(codat_simulator.state.clock, "now", lambda: instant)
    first_batch = control.mutate(company, "bills", created=3)
    extract(company, "bills", "run1")
    # More versions land at the very instant the first run ended on.
    second_batch = control.mutate(company, "bills", created=2, modified=1)
    assert second_batch["modifiedDate"] == first_batch["modifiedDate"]
    second = extract(company, "bills", "run2")
    new = run_records(out(company, "bills"), "run2")
    assert {r["id"] for r in new} == set(second_batch["created"]) | set(second_batch["modified"])
    assert second["watermark_from"] == second["watermark_to"] == first_batch["modifiedDate"]
    third = extract(company, "bills", "run3")
    assert third["records"] == 0 and third["files"] == []
    written = versions(read_records(out(company, "bills")))
    # A record modified at the shared instant is one version: (id, modifiedDate) is written once.
    assert len(written) == len(set(written)) and set(written) == truth(control, company, "bills") | set(
        versions(run_records(out(company, "bills"), "run1"))
    )


def test_include_and_exclude_deleted(codat_simulator, company, extract, tmp_path):
    control = codat_simulator.control
    changed = control.mutate(company, "payments", deleted=4)
    kept = extract(company, "payments", destination=f"file://{tmp_path}/with")
    with_deleted = read_records(tmp_path / "with" / company / "payments")
    assert set(versions(with_deleted)) == truth(control, company, "payments")
    assert {r["id"] for r in with_deleted if r["metadata"]["isDeleted"]} >= set(changed["deleted"])
    assert kept["deleted"] == sum(1 for r in with_deleted if r["metadata"]["isDeleted"])

    control.reset_request_log()
    dropped = extract(company, "payments", include_deleted=False, destination=f"file://{tmp_path}/without")
    without = read_records(tmp_path / "without" / company / "payments")
    live = {v for v in truth(control, company, "payments") if v[2] not in set(changed["deleted"])}
    assert set(versions(without)) == {
        (None, None, r["id"], r["modifiedDate"])
        for r in control.records(company, "payments")
        if not r["metadata"]["isDeleted"]
    }
    assert live >= set(versions(without)) and dropped["deleted"] == 0
    reads = [e for e in control.request_log() if e["path"].endswith("/data/payments")]
    assert reads and all("metadata.isDeleted" in e["query"] for e in reads)


SNAPSHOT_OR_SCOPED = sorted(
    key for key, entry in CATALOGUE.items() if entry.kind is Kind.SNAPSHOT or entry.scope is not Scope.COMPANY
)


@pytest.mark.parametrize("data_type", SNAPSHOT_OR_SCOPED)
def test_every_snapshot_and_connection_scoped_type(codat_simulator, company, extract, out, data_type):
    control = codat_simulator.control
    entry = CATALOGUE[data_type]
    if not entry.fetch_on_first_link:
        control.mutate(company, data_type, created=5)  # a completed sync, so that there is data to read
    control.reset_request_log()
    summary = extract(company, data_type)
    records = read_records(out(company, data_type))
    assert summary["records"] == len(records) and summary["files"]
    if entry.kind is Kind.SNAPSHOT:
        connections = [
            c["id"]
            for c in next(c for c in control.companies() if c["id"] == company)["connections"]
            if c["sourceType"] == entry.source_type
        ]
        expected = len(connections) if entry.scope is Scope.CONNECTION else 1
        assert len(records) == expected
        assert all(r["_codat"]["dataType"] == data_type for r in records)
        if entry.report:
            reads = [e for e in control.request_log() if "/financials/" in e["path"]]
            assert reads and all(
                "periodLength=1" in e["query"] and "periodsToCompare=24" in e["query"] for e in reads
            )
        return
    assert set(versions(records)) == truth(control, company, data_type)
    assert len(records) == len(set(versions(records))) > 0
    if entry.scope is Scope.BANK_ACCOUNT:
        assert len({r["_codat"]["bankAccountId"] for r in records}) == len(control.bank_account_ids(company))


def test_financial_statements_take_the_period_settings(codat_simulator, company, extract):
    control = codat_simulator.control
    extract(company, "profitAndLoss", period_length=3, periods_to_compare=8, start_month="2025-01-01")
    reads = [e for e in control.request_log() if e["path"].endswith("/financials/profitAndLoss")]
    assert reads and "periodLength=3" in reads[-1]["query"] and "periodsToCompare=8" in reads[-1]["query"]
    assert "startMonth=2025-01-01" in reads[-1]["query"]


def test_one_connection_only(codat_simulator, company, extract, out):
    control = codat_simulator.control
    connection_id = control.connection_id(company, "Accounting")
    extract(company, "accountTransactions", connection_id=connection_id)
    records = read_records(out(company, "accountTransactions"))
    assert {r["_codat"]["connectionId"] for r in records} == {connection_id}
    assert set(versions(records)) == truth(control, company, "accountTransactions")


def test_never_synced_is_a_clear_error_not_an_empty_success(codat_simulator, company, extract, out):
    with pytest.raises(CodatDataNotSyncedError, match="Queue a refresh first"):
        extract(company, "purchaseOrders")
    assert not out(company, "purchaseOrders").exists()
    # Once a sync has completed, the same extract succeeds.
    codat_simulator.control.mutate(company, "purchaseOrders", created=4)
    extract(company, "purchaseOrders")
    assert set(versions(read_records(out(company, "purchaseOrders")))) == truth(
        codat_simulator.control, company, "purchaseOrders"
    )


# -- faults ---------------------------------------------------------------------------------------------
def test_rate_limits_and_server_errors_while_paging(codat_simulator, company, extract, out):
    control = codat_simulator.control
    path = r"/data/invoices$"
    control.add_fault("rate_limit", path=path, times=2, retry_after=0)
    control.add_fault("server_error", path=path, times=1, status=503)
    control.add_fault("server_error", path=path, times=1, status=500)
    control.add_fault("drop", path=path, times=1)
    summary = extract(company, "invoices", page_size=5)
    records = read_records(out(company, "invoices"))
    assert set(versions(records)) == truth(control, company, "invoices")
    assert len(records) == summary["records"] == len(set(versions(records)))
    statuses = [e["status"] for e in control.request_log() if e["path"].endswith("/data/invoices")]
    assert 429 in statuses and 503 in statuses and 500 in statuses


def test_killed_after_files_before_state_then_retried(codat_simulator, company, extract, out):
    control = codat_simulator.control
    folder = out(company, "invoices")
    extract(company, "invoices", "run1")
    before = (folder / "_state.json").read_bytes()
    control.mutate(company, "invoices", created=6, modified=5, deleted=3)

    def killed(*args, **kwargs):
        raise SystemExit("worker killed")

    with pytest.MonkeyPatch.context() as patch, pytest.raises(SystemExit):
        patch.setattr(extract_run, "save_state", killed)
        extract(company, "invoices", "run2", page_size=3, max_file_records=1)
    # The killed try's files are staged (hidden, .tmp): none matches the layout a reader globs.
    assert len(list((folder / "run=run2").glob(".*.tmp"))) >= 3
    assert list((folder / "run=run2").glob("*.jsonl.gz")) == []
    assert (folder / "_state.json").read_bytes() == before  # the old state: not committed

    extract(company, "invoices", "run2", page_size=50)
    written = versions(read_records(folder))
    assert len(written) == len(set(written))
    assert set(written) >= truth(control, company, "invoices")
    assert {v for v in versions(run_records(folder, "run2"))} == {
        v for v in truth(control, company, "invoices") if v not in set(versions(run_records(folder, "run1")))
    }


def test_killed_while_writing_pages_then_retried(codat_simulator, company, extract, out):
    control = codat_simulator.control
    folder = out(company, "invoices")
    extract(company, "invoices", "run1")
    control.mutate(company, "invoices", created=10, modified=10)
    original = PartWriter.write
    calls = {"n": 0}

    def dies_on_third_page(self, records):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("SIGTERM")
        return original(self, records)

    with pytest.MonkeyPatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(PartWriter, "write", dies_on_third_page)
        extract(company, "invoices", "run2", page_size=4)
    summary = extract(company, "invoices", "run2", page_size=4)
    run2 = versions(run_records(folder, "run2"))
    assert summary["records"] == len(run2) == 20 == len(set(run2))
    assert set(versions(read_records(folder))) >= truth(control, company, "invoices")


def test_same_run_retried_after_commit(codat_simulator, company, extract, out):
    control = codat_simulator.control
    folder = out(company, "customers")
    first = extract(company, "customers", "run1")
    control.mutate(company, "customers", created=2, modified=3, deleted=1)
    second = extract(company, "customers", "run2")
    committed = sorted(versions(read_records(folder)))
    # A retry of a committed run returns its summary and leaves its files alone, even while Codat fails.
    control.add_fault("server_error", status=503, times=None)
    assert extract(company, "customers", "run2", max_passes=1) == second
    control.clear_faults()
    assert extract(company, "customers", "run2") == second
    assert sorted(versions(read_records(folder))) == committed
    assert len(committed) == len(set(committed)) and set(committed) >= truth(control, company, "customers")
    assert extract(company, "customers", "run3")["records"] == 0
    # An older run cleared after later runs committed: nothing is rewritten.
    assert extract(company, "customers", "run1") == first
    assert sorted(versions(read_records(folder))) == committed


def test_write_while_paging_loses_nothing_without_a_second_pass(codat_simulator, company, extract, out):
    control = codat_simulator.control
    control.add_fault("write_during_paging", path=r"/data/invoices$", after_page=1)
    summary = extract(company, "invoices", page_size=5)
    records = read_records(out(company, "invoices"))
    assert set(versions(records)) == truth(control, company, "invoices")
    assert len(records) == len(set(versions(records))) == summary["records"]
    reads = [e for e in control.request_log() if e["path"].endswith("/data/invoices")]
    # Keyset pages: every record once, the moved ones read ahead of the cursor, one pass.
    assert len(reads) <= -(-summary["records"] // 4) + 1


def test_full_refresh_reads_everything_and_resets_the_state(codat_simulator, company, extract, out):
    control = codat_simulator.control
    folder = out(company, "items")
    extract(company, "items", "run1")
    control.mutate(company, "items", modified=2)
    full = extract(company, "items", "run2", full_refresh=True)
    assert set(versions(run_records(folder, "run2"))) == truth(control, company, "items")
    assert full["watermark_from"] is None
    assert extract(company, "items", "run3")["records"] == 0


def test_a_deauthorised_connection_keeps_its_data_readable(codat_simulator, extract, out):
    control = codat_simulator.control
    company_id = control.deauthorized_company_ids()[0]
    summary = extract(company_id, "bankAccounts")
    records = read_records(out(company_id, "bankAccounts"))
    assert set(versions(records)) == truth(control, company_id, "bankAccounts") and summary["records"] > 0


def test_a_connection_waiting_for_authorisation_is_not_read(codat_simulator, company, extract, out):
    control = codat_simulator.control
    control.set_connection_status(company, control.connection_id(company, "Commerce"), "PendingAuth")
    control.reset_request_log()
    summary = extract(company, "commerce-orders")
    assert summary["records"] == 0 and summary["files"] == []
    assert not any("/connections/" in e["path"] and "/data/" in e["path"] for e in control.request_log())


@pytest.mark.parametrize("clock_at", MOMENTS, indirect=True)
def test_incremental_runs_across_the_moment(codat_simulator, company, extract, out, clock_at):
    control = codat_simulator.control
    first = control.mutate(company, "invoices", created=2, modified=1)
    one = extract(company, "invoices", "run1")
    assert one["watermark_to"] == first["modifiedDate"] == control.now()
    # One second on: past midnight, into the next month or year, over the DST hour (the instant, in UTC).
    control.advance(1)
    second = control.mutate(company, "invoices", created=1, modified=2, deleted=1)
    two = extract(company, "invoices", "run2")
    assert two["watermark_from"] == first["modifiedDate"]
    assert two["watermark_to"] == second["modifiedDate"] > first["modifiedDate"]
    written = run_records(out(company, "invoices"), "run2")
    assert {r["id"] for r in written} == set(second["created"] + second["modified"] + second["deleted"])
    # extractedAt is the (stopped) wall clock in UTC, whatever TZ time-machine set.
    utc = clock_at.astimezone(UTC)
    assert {r["_codat"]["extractedAt"] for r in written} == {f"{utc:%Y-%m-%dT%H:%M:%S}.000000Z"}
    # Every current version landed (older versions of changed records stay in run1).
    assert truth(control, company, "invoices") <= set(versions(read_records(out(company, "invoices"))))


@pytest.mark.parametrize("clock_at", MOMENTS, indirect=True)
def test_financial_statements_land_on_every_date(codat_simulator, company, extract, out, clock_at):
    summary = extract(company, "profitAndLoss")
    [report] = read_records(out(company, "profitAndLoss"))
    assert summary["records"] == 1 and len(report["reports"]) == 24
    utc = clock_at.astimezone(UTC)
    assert report["reports"][0]["toDate"][:7] == f"{utc:%Y-%m}"
