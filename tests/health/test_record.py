"""The health record against a real migrated Airflow database: reports folded once, bounded tables, connection
status from the webhook receiver's store, the company task's report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import select

from airflow_provider_codat.health.fold import fold_reports
from airflow_provider_codat.health.record import QUOTA, apply_report, get_meta, prune
from airflow_provider_codat.health.schema import CONNECTIONS, DAYS, MINUTES, TYPES
from tests.health.reports import a_report, push_xcom

COMPANY = "0498e921-9b53-4396-a412-4f2f5983b0a2"
NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
# Folding prunes by the clock, pinned to NOW below: a minute it keeps.
RECENT_MINUTE = str(int(NOW.timestamp() // 60) - 5)


@pytest.fixture(autouse=True)
def _clock_at_now():
    with time_machine.travel(NOW, tick=True):
        yield


def _types(engine):
    with engine.connect() as connection:
        return {
            (r["company_id"], r["data_type"]): dict(r) for r in connection.execute(select(TYPES)).mappings()
        }


def test_a_failure_keeps_the_last_landing_and_a_landing_keeps_the_last_error(health_engine):
    landed = a_report(
        {COMPANY: {"invoices": {"status": "extracted", "records": 12, "synced_at": "2026-12-07T08:59:00Z"}}}
    )
    failed = a_report(
        {COMPANY: {"invoices": {"status": "failed", "error": "sync FetchError: Xero said no"}}},
        run_id="manual__2",
        task_id="sync_again",
    )
    with health_engine.begin() as connection:
        apply_report(connection, landed, at=NOW)
        apply_report(connection, failed, at=NOW + timedelta(hours=1))
    row = _types(health_engine)[(COMPANY, "invoices")]
    assert (
        row["status"] == "failed" and row["records"] == 12 and row["landed_run_id"] == "scheduled__2026-12-07"
    )
    assert row["error"] == "sync FetchError: Xero said no"
    assert (row["error_task"], row["error_run_id"]) == ("sync_again", "manual__2")
    assert row["synced_at"].replace(tzinfo=UTC) == datetime(2026, 12, 7, 8, 59, tzinfo=UTC)
    with health_engine.begin() as connection:
        apply_report(connection, landed, at=NOW + timedelta(hours=2))
    row = _types(health_engine)[(COMPANY, "invoices")]
    assert row["status"] == "extracted" and row["error"] == "sync FetchError: Xero said no"


def test_requests_and_records_add_up_and_old_ones_are_pruned(health_engine):
    minute = int(NOW.timestamp() // 60)
    first = a_report({COMPANY: {"bills": {"status": "extracted", "records": 5}}}, minutes={str(minute): 3})
    second = a_report(
        {COMPANY: {"bills": {"status": "extracted", "records": 7}}},
        minutes={str(minute): 4, str(minute - 2000): 1},
    )
    with health_engine.begin() as connection:
        apply_report(connection, first, at=NOW)
        apply_report(connection, second, at=NOW)
        apply_report(
            connection,
            a_report({COMPANY: {"bills": {"status": "extracted", "records": 1}}}),
            at=NOW - timedelta(days=40),
        )
        prune(connection, now=NOW)
        minutes = dict(connection.execute(select(MINUTES.c.minute, MINUTES.c.requests)).all())
        days = dict(connection.execute(select(DAYS.c.day, DAYS.c.records)).all())
    assert minutes == {minute: 7}
    assert days == {"2026-12-07": 12}


def test_an_older_quota_does_not_replace_a_newer_one(health_engine):
    newer = {"limit": 12000, "remaining": 40, "resets_at": 1.0e9 + 86400, "observed_at": 1.0e9 + 10}
    older = dict(newer, remaining=9000, observed_at=1.0e9)
    with health_engine.begin() as connection:
        apply_report(connection, a_report({}, quota=newer), at=NOW)
        apply_report(connection, a_report({}, quota=older), at=NOW)
        assert '"remaining": 40' in get_meta(connection, QUOTA)


def test_reports_are_folded_once_also_those_pushed_at_the_same_instant(health_engine):
    one = a_report({COMPANY: {"invoices": {"status": "extracted", "records": 2}}}, minutes={RECENT_MINUTE: 1})
    other = "1d1b6c57-8b4e-4a40-9a9e-1c1b8e9b6d10"
    two = a_report(
        {other: {"invoices": {"status": "extracted", "records": 3}}},
        task_id="sync2",
        minutes={RECENT_MINUTE: 1},
    )
    push_xcom(health_engine, one, at=NOW)
    assert fold_reports(health_engine) == 1
    push_xcom(health_engine, two, at=NOW)  # the same instant as the watermark: still new
    assert fold_reports(health_engine) == 1
    assert fold_reports(health_engine) == 0
    assert set(_types(health_engine)) == {(COMPANY, "invoices"), (other, "invoices")}
    with health_engine.connect() as connection:
        assert connection.execute(select(MINUTES.c.requests)).scalar() == 2


def test_the_webhook_store_records_a_connections_status_with_the_delivery(health_engine):
    from airflow_provider_codat.webhooks.deliveries import delivery_of
    from airflow_provider_codat.webhooks.store import store_delivery

    body = {
        "eventType": "connection.disconnected",
        "generatedDate": "2026-12-07T09:00:00Z",
        "payload": {
            "referenceCompany": {"id": COMPANY, "name": "Acme Ltd"},
            "connection": {
                "id": "2e9d2c44-f675-40ba-8049-353bfcb5e171",
                "platformName": "Xero",
                "status": "Deauthorized",
            },
        },
    }
    delivery = delivery_of(body, "connection.disconnected", "msg_health_1")
    assert store_delivery(delivery).duplicate is False
    with health_engine.connect() as connection:
        rows = connection.execute(select(CONNECTIONS)).mappings().all()
    assert [(r["company_id"], r["company_name"], r["platform"], r["status"]) for r in rows] == [
        (COMPANY, "Acme Ltd", "Xero", "Deauthorized")
    ]


@pytest.mark.codat_simulator(companies=3, records=20, sync_seconds=30)
def test_a_company_task_reports_its_landings_and_failures_when_it_fails(sim, sim_clock, company_id, tmp_path):
    from airflow_provider_codat.operators.company import CodatCompanySyncFailedError, CodatCompanySyncOperator
    from tests.sync.conftest import FakeTI

    ti = FakeTI()
    ti.dag_id, ti.task_id = "codat_sync_daily", "sync"
    sim.control.fail_next_sync(company_id, "payments", status="FetchError", error_message="Xero said no")
    task = CodatCompanySyncOperator(
        task_id="sync",
        company_id=company_id,
        data_types=["invoices", "payments"],
        destination=str(tmp_path),
        deferrable=False,
        company_name="Acme Ltd",
    )
    with pytest.raises(CodatCompanySyncFailedError):
        task.execute({"ti": ti, "run_id": "manual__1"})
    report = ti.xcoms["codat_health"]
    assert (report["dag_id"], report["run_id"], report["task_id"]) == (
        "codat_sync_daily",
        "manual__1",
        "sync",
    )
    company = report["companies"][company_id]
    assert company["name"] == "Acme Ltd"
    payments = company["types"]["payments"]
    assert (payments["status"], payments["error"]) == ("failed", "sync FetchError: Xero said no")
    assert (
        company["types"]["invoices"]["status"] == "extracted" and company["types"]["invoices"]["records"] > 0
    )
    assert company["types"]["invoices"]["synced_at"]
    assert sum(report["minutes"].values()) >= 4  # queue, status, reads: every request counted
    assert report["requests_per_minute"] == 900


def _connections(engine):
    with engine.connect() as connection:
        return {r["connection_id"]: dict(r) for r in connection.execute(select(CONNECTIONS)).mappings()}


def test_a_listings_statuses_are_kept_unless_a_webhook_said_otherwise_since(health_engine):
    from airflow_provider_codat.health.record import record_connection
    from airflow_provider_codat.health.report import listed_connections

    other = "1d1b6c57-8b4e-4a40-9a9e-1c1b8e9b6d10"
    listed = [
        {
            "id": COMPANY,
            "name": "Acme Ltd",
            "dataConnections": [
                {"id": "c-1", "platformName": "Xero", "status": "Deauthorized"},
                {"id": "c-2", "platformName": "Plaid", "status": "Linked"},
            ],
        },
        {"id": other, "name": "No connections"},
    ]
    report = a_report({}, task_id="portfolio", connections=listed_connections(listed))
    with health_engine.begin() as connection:
        record_connection(
            connection,
            {"company_id": COMPANY, "connection_id": "c-2", "platform": "Plaid", "status": "Unlinked"},
            at=NOW + timedelta(minutes=5),  # the webhook came after the listing
        )
        apply_report(connection, report, at=NOW)
    found = {
        cid: (row["company_name"], row["platform"], row["status"])
        for cid, row in _connections(health_engine).items()
    }
    assert found == {"c-1": ("Acme Ltd", "Xero", "Deauthorized"), "c-2": (None, "Plaid", "Unlinked")}
    with health_engine.begin() as connection:  # a later listing wins
        apply_report(connection, report, at=NOW + timedelta(hours=1))
    assert _connections(health_engine)["c-2"]["status"] == "Linked"


def test_a_merging_tasks_table_rows_leave_the_outcome_as_it_is(health_engine):
    from airflow_provider_codat.health.report import build_report

    landed = a_report({COMPANY: {"invoices": {"status": "failed", "error": "boom"}}}, task_id="sync")
    counted = build_report(
        dag_id="codat_sync_daily",
        run_id="scheduled__2026-12-07",
        task_id="tables",
        results={},
        syncs={},
        table_rows={COMPANY: {"invoices": 42, "bills": 7}},
    )
    with health_engine.begin() as connection:
        apply_report(connection, landed, at=NOW)
        apply_report(connection, counted, at=NOW + timedelta(minutes=1))
    rows = _types(health_engine)
    assert set(rows) == {(COMPANY, "invoices")}  # no landing of bills recorded: nothing to attach a count to
    invoices = rows[(COMPANY, "invoices")]
    assert (invoices["table_rows"], invoices["status"], invoices["task_id"], invoices["error"]) == (
        42,
        "failed",
        "sync",
        "boom",
    )


def test_rows_of_a_delta_table_are_counted_per_company_without_deleted_ones(tmp_path):
    import pyarrow as pa
    from deltalake import write_deltalake

    from airflow_provider_codat.health.table_rows import count_rows
    from airflow_provider_codat.tables.key import COMPANY as COLUMN
    from airflow_provider_codat.tables.key import DELETED

    other = "1d1b6c57-8b4e-4a40-9a9e-1c1b8e9b6d10"
    write_deltalake(
        str(tmp_path),
        pa.table({COLUMN: [COMPANY, COMPANY, COMPANY, other], DELETED: [False, None, True, False]}),
    )
    assert count_rows(str(tmp_path), {}, [COMPANY, "absent"]) == {COMPANY: 2, "absent": 0}


def test_the_list_keeps_a_row_per_company_and_dag_and_builds_them_for_an_older_record(health_engine):
    from sqlalchemy import delete

    from airflow_provider_codat.health import fold
    from airflow_provider_codat.health.schema import COMPANIES, META

    def listed():
        with health_engine.connect() as connection:
            return {
                (r["company_id"], r["dag_id"]): (r["never_landed"], r["failed"], r["name_key"])
                for r in connection.execute(select(COMPANIES)).mappings()
            }

    with health_engine.begin() as connection:
        apply_report(
            connection,
            a_report(
                {COMPANY: {"invoices": {"status": "extracted"}, "bills": {"status": "failed", "error": "x"}}},
                names={COMPANY: "Acme LTD"},
            ),
            at=NOW,
        )
    assert listed() == {(COMPANY, "codat_sync_daily"): (1, 1, "acme ltd")}
    with health_engine.begin() as connection:  # both types now synced by the hourly DAG
        apply_report(
            connection,
            a_report(
                {COMPANY: {"invoices": {"status": "extracted"}, "bills": {"status": "extracted"}}},
                dag_id="codat_sync_hourly",
            ),
            at=NOW,
        )
    assert listed() == {(COMPANY, "codat_sync_hourly"): (0, 0, "acme ltd")}
    with health_engine.begin() as connection:  # a record kept before the list had its table
        connection.execute(delete(COMPANIES))
        connection.execute(delete(META))
    fold._summarised = False
    fold.ensure_summaries(health_engine)
    assert listed() == {(COMPANY, "codat_sync_hourly"): (0, 0, "acme ltd")}
