"""`airflow dags test` of every example DAG against the simulator, over real HTTP.

The files written are compared with the simulator's records as (id, modifiedDate) sets. Small data sets and
one-second syncs keep each run to seconds of work (most of the time is Airflow starting up).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow.sdk import ObjectStoragePath
from local_airflow import read_run_files, simulator_versions  # tools/, on pytest's pythonpath

from airflow_provider_codat.datatypes import Kind, get_data_type
from airflow_provider_codat.extract.landed import current_versions
from tests.tables.conftest import assert_table_is_truth, table_rows
from tests.tables.conftest import truth as table_truth

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow
DAGS = ROOT / "dags"
SIMULATOR = {"companies": 3, "records": 10, "sync_seconds": 1}
AUTH_ERROR = "The connection is no longer authorized"


def _run(airflow_cli, simulator, dag_id: str, destination: Path, conf: dict | None = None):
    env = {**simulator.conn_env, "CODAT_SYNC_POKE_INTERVAL": "1"}
    result = airflow_cli.dags_test(
        dag_id, dags_folder=DAGS, conf={"destination": str(destination), **(conf or {})}, extra_env=env
    )
    assert result.run_id is not None, result.output[-5000:]
    return result


def _versions(records: list[dict]) -> set[tuple[str, str | None]]:
    return {(record["id"], record.get("modifiedDate")) for record in records}


def _truth(control, company_id: str, data_type: str) -> set[tuple[str, str | None]]:
    return set(simulator_versions(control, company_id, data_type).items())


def _assert_files_match_simulator(control, files: dict, expected_pairs: set[tuple[str, str]]) -> None:
    assert set(files) >= {pair for pair in expected_pairs if get_data_type(pair[1]).kind is not Kind.SNAPSHOT}
    for (company_id, data_type), records in files.items():
        if get_data_type(data_type).kind is Kind.SNAPSHOT:
            assert len(records) == 1, (company_id, data_type)  # the object, written whole
            continue
        assert _versions(records) == _truth(control, company_id, data_type), (company_id, data_type)


def _names(control) -> dict[str, str]:
    return {company["id"]: company["name"] for company in control.companies()}


def _sync_labels(result, group: str = "codat_sync") -> dict[int, str]:
    return result.rendered_map_indexes(f"{group}.sync")


def _landed(result, group: str = "codat_sync") -> set[tuple[str, str]]:
    """(company, type) of every type the company tasks extracted, read from their XCom."""
    states = result.task_states()
    pairs = set()
    for index in _sync_labels(result, group):
        if states[(f"{group}.sync", index)] != "success":
            continue
        for data_type, outcome in result.xcom(f"{group}.sync", index).items():
            if outcome["status"] == "extracted":
                pairs.add((outcome["company_id"], data_type))
    return pairs


@pytest.mark.codat_simulator(**SIMULATOR)
def test_hourly_a_deauthorized_company_fails_alone(airflow_cli, codat_simulator, tmp_path):
    control = codat_simulator.control
    linked = control.linked_company_ids()
    [deauthorized] = control.deauthorized_company_ids()
    result = _run(
        airflow_cli,
        codat_simulator,
        "codat_sync_hourly",
        tmp_path,
        conf={"company_ids": [*linked, deauthorized]},
    )
    states = result.task_states()
    assert result.returncode != 0, "a failed company must fail the run"

    # One task per company, labelled with the company's name.
    names = _names(control)
    syncs = {label: states[("codat_sync.sync", i)] for i, label in _sync_labels(result).items()}
    assert syncs == {**{names[c]: "success" for c in linked}, names[deauthorized]: "failed"}
    assert AUTH_ERROR in result.output  # Codat's errorMessage, in the failed task's log
    assert states[("codat_sync.summary", -1)] == "failed"
    assert deauthorized in result.output.split("companies did not land all their data")[1].splitlines()[0]

    # The other companies landed exactly the records.
    assert _landed(result) == {(c, t) for c in linked for t in ("invoices", "payments")}
    files = read_run_files(tmp_path, result.run_id)
    assert {company for company, _ in files} == set(linked)
    _assert_files_match_simulator(control, files, {(c, t) for c in linked for t in ("invoices", "payments")})


@pytest.mark.codat_simulator(**SIMULATOR)
def test_daily_second_run_writes_only_the_changes(airflow_cli, codat_simulator, tmp_path):
    control = codat_simulator.control
    linked = control.linked_company_ids()
    first = _run(airflow_cli, codat_simulator, "codat_sync_daily", tmp_path)
    assert first.returncode == 0, first.output[-5000:]
    types = first.xcom("portfolio", key="data_types")
    pairs = {(c, t) for c in linked for t in types}
    assert _landed(first) == pairs
    _assert_files_match_simulator(control, read_run_files(tmp_path, first.run_id), pairs)

    before = {pair: _truth(control, *pair) for pair in pairs}
    for company_id in linked:
        control.mutate(company_id, "invoices", created=2, modified=2, deleted=1)
    second = _run(airflow_cli, codat_simulator, "codat_sync_daily", tmp_path)
    assert second.returncode == 0, second.output[-5000:]

    written = read_run_files(tmp_path, second.run_id)
    for pair in pairs:
        changes = _truth(control, *pair) - before[pair]
        assert _versions(written.get(pair, [])) == changes, pair
    # The mutations (and the records the refresh's own syncs changed) arrived, deletions flagged.
    for company_id in linked:
        invoices = written[(company_id, "invoices")]
        assert len(invoices) >= 5
        assert any((r.get("metadata") or {}).get("isDeleted") for r in invoices)

    # Each run was merged into every type's table, one commit per type: the tables hold the live records.
    merged = second.xcom("codat_sync.tables")
    assert set(merged) == set(types)
    assert merged["invoices"]["deleted"] >= len(linked) and len(merged["invoices"]["merged"]) == len(linked)
    for data_type in types:
        table = table_rows(tmp_path / "_tables" / data_type)
        gone_unseen = not get_data_type(data_type).has_deleted_flag
        assert_table_is_truth(table, table_truth(control, linked, data_type), gone_unseen=gone_unseen)


@pytest.mark.codat_simulator(companies=1, records=5, sync_seconds=1)
def test_weekly_refresh_all_lands_every_type(airflow_cli, codat_simulator, tmp_path):
    control = codat_simulator.control
    [company_id] = control.linked_company_ids()
    result = _run(airflow_cli, codat_simulator, "codat_sync_weekly", tmp_path)
    assert result.returncode == 0, result.output[-5000:]
    labels = _landed(result)
    # Every fetch-on-first-link type the company's platforms support, read from the right connection.
    assert {"invoices", "bankTransactions", "banking-transactions", "commerce-orders", "company"} <= {
        t for _, t in labels
    }
    _assert_files_match_simulator(control, read_run_files(tmp_path, result.run_id), labels)
    # Each flagless type is reconciled after its extract (a first reconcile: nothing dropped since it landed).
    [outcomes] = [result.xcom("codat_sync.sync", index) for index in _sync_labels(result)]
    reconciled = {key for key, outcome in outcomes.items() if (outcome.get("reconcile") or {}).get("status")}
    assert {"bankTransactions", "banking-transactions", "commerce-orders", "commerce-products"} <= reconciled
    assert {outcomes[key]["reconcile"]["status"] for key in reconciled} == {"reconciled"}
    assert "reconcile" not in outcomes["invoices"]

    # Codat drops records of flagless types without a trace; the next weekly run reconciles them away, from
    # the landing's current state and from the tables, exactly.
    dropped = {key: control.mutate(company_id, key, deleted=2)["deleted"] for key in sorted(reconciled)}
    second = _run(airflow_cli, codat_simulator, "codat_sync_weekly", tmp_path)
    assert second.returncode == 0, second.output[-5000:]
    [outcomes] = [second.xcom("codat_sync.sync", index) for index in _sync_labels(second)]
    for key in reconciled:
        assert outcomes[key]["reconcile"]["tombstoned"] >= len(dropped[key]), key
        live = {
            ident
            for versions in current_versions(
                ObjectStoragePath(f"file://{tmp_path}/{company_id}/{key}")
            ).values()
            for ident, version in versions.items()
            if not version.deleted
        }
        assert not live & set(dropped[key]), key
        table = table_rows(tmp_path / "_tables" / key)
        assert_table_is_truth(table, table_truth(control, [company_id], key))


@pytest.mark.codat_simulator(**SIMULATOR)
def test_monthly_keeps_tokens_alive_and_reports_relinks(airflow_cli, codat_simulator, tmp_path):
    control = codat_simulator.control
    linked = control.linked_company_ids()
    [deauthorized] = control.deauthorized_company_ids()
    [company] = [c for c in control.companies() if c["id"] == deauthorized]
    [connection] = [x for x in company["connections"] if x["status"] == "Deauthorized"]
    _announce_disconnection(airflow_cli, deauthorized, connection["id"])
    result = _run(airflow_cli, codat_simulator, "codat_sync_monthly", tmp_path)
    assert result.returncode == 0, result.output[-5000:]
    pairs = {(c, t) for c in linked for t in ("company", "taxRates", "chartOfAccounts")}
    assert _landed(result) == pairs
    _assert_files_match_simulator(control, read_run_files(tmp_path, result.run_id), pairs)
    report = result.xcom("relink_report")
    assert [(row["company_id"], row["status"]) for row in report] == [(deauthorized, "Deauthorized")]
    assert report[0]["link_url"]
    # Codat's webhook announced it: the report says when (read from codat://connection-status).
    assert report[0]["reported_as"] == "connection.disconnected" and report[0]["reported_at"]


# A connection.disconnected delivery stored and drained the way the receiver does it.
_ANNOUNCE = """
import sys
from airflow_provider_codat.webhooks.deliveries import delivery_of
from airflow_provider_codat.webhooks.drain import drain_inbox
from airflow_provider_codat.webhooks.store import store_delivery

company, connection = sys.argv[1:3]
body = {"eventType": "connection.disconnected", "generatedDate": "2026-11-26T10:00:00Z",
        "payload": {"referenceCompany": {"id": company}, "connection": {"id": connection, "status": "Deauthorized"}}}
store_delivery(delivery_of(body, "connection.disconnected", "msg_monthly_" + connection))
created, _ = drain_inbox()
assert created, "no event: the asset codat://connection-status is missing"
"""


def _announce_disconnection(airflow_cli, company_id: str, connection_id: str) -> None:
    """A ``connection.disconnected`` stored in the test database, after the DAGs are serialised (so the asset
    the monthly DAG's ``relink_report`` reads exists)."""
    import subprocess
    import sys

    env = {"AIRFLOW__CORE__DAGS_FOLDER": str(DAGS)}
    result = airflow_cli.run("dags", "reserialize", extra_env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    stored = subprocess.run(
        [sys.executable, "-c", _ANNOUNCE, company_id, connection_id],
        env={**airflow_cli.env, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert stored.returncode == 0, stored.stdout + stored.stderr


@pytest.mark.codat_simulator(**SIMULATOR)
def test_report_gate_computes_receivables_from_fresh_data(airflow_cli, codat_simulator, tmp_path):
    control = codat_simulator.control
    linked = control.linked_company_ids()
    env = {"AIRFLOW_VAR_CODAT_DESTINATION": tmp_path.as_uri()}
    result = airflow_cli.dags_test(
        "codat_ar_report",
        dags_folder=DAGS,
        extra_env={**codat_simulator.conn_env, "CODAT_SYNC_POKE_INTERVAL": "1", **env},
    )
    assert result.returncode == 0, result.output[-5000:]
    gates = result.rendered_map_indexes("report.freshness_gate")
    assert sorted(gates.values()) == sorted(linked)
    for index, company_id in gates.items():
        freshness = result.xcom("report.freshness_gate", index)
        assert {t for t, r in freshness.items() if r["fresh"]} == {
            "invoices",
            "creditNotes",
            "payments",
            "accountTransactions",
            "customers",
        }
        receivables = result.xcom("report.accounts_receivable", index)
        open_invoices = [
            r
            for r in control.records(company_id, "invoices")
            if r["status"] in ("Submitted", "PartiallyPaid") and not r["metadata"]["isDeleted"]
        ]
        expected_currencies = {r["currency"] for r in open_invoices}
        assert expected_currencies <= set(receivables)
