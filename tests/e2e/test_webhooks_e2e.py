"""End to end, zero polling: a simulator sync completes → a signed webhook → the plugin on `make airflow`'s API
server → asset events → a ``codat_on_change`` run → the records land, exactly once.

Opt-in: runs when CODAT_E2E=1 (CI sets it). One `airflow standalone`, three small companies; a few minutes.
"""

from __future__ import annotations

import os
import time
from collections import Counter

import httpx
import pytest
from local_airflow import latest_versions, read_run_files, simulator_versions

from airflow_provider_codat.webhooks.events import EVENT_SOURCE
from tests.e2e.standalone import api_client, free_port, make_airflow, tail, until, wait_until_healthy

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
DAG_ID = "codat_on_change"


@pytest.fixture(scope="module", autouse=True)
def _opt_in() -> None:
    if os.environ.get("CODAT_E2E") != "1":
        pytest.skip("the end-to-end webhook test runs with CODAT_E2E=1 (CI sets it)")


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def webhooks_to_airflow(codat_simulator, port):
    """The simulator announces finished syncs to the standalone's receiver, each message twice, newest first
    (configured before `make airflow` starts, so its connection carries the signing secret)."""
    return codat_simulator.control.configure_webhooks(
        f"http://127.0.0.1:{port}/codat/webhooks", duplicates=1, out_of_order=True
    )


@pytest.fixture
def standalone(webhooks_to_airflow, codat_simulator, tmp_path, port):
    with make_airflow(
        tmp_path / "airflow", port, codat_simulator.connection_json, "airflow-webhooks.log"
    ) as running:
        yield running


def _version_counts(files: dict) -> Counter:
    return Counter(
        (pair, record["id"], record.get("modifiedDate"))
        for pair, records in files.items()
        for record in records
    )


@pytest.mark.codat_simulator(companies=3, records=10, sync_seconds=600)
def test_a_finished_sync_lands_its_records_through_the_webhook_exactly_once(
    webhooks_to_airflow, standalone, codat_simulator, tmp_path
):
    base, proc, log_file = standalone
    control = codat_simulator.control
    api = api_client(base)
    wait_until_healthy(api, proc, log_file, DAG_ID)
    assert api.patch(f"/dags/{DAG_ID}", json={"is_paused": False}).status_code == 200
    destination = tmp_path / "airflow" / "codat-data"

    # The receiver is mounted on Airflow's API server, and it checks signatures there.
    receiver = f"{base}/codat/webhooks"
    forged = {
        "webhook-id": "msg_forged",
        "webhook-timestamp": str(int(time.time())),
        "webhook-signature": "v1,AA==",
    }
    assert httpx.post(receiver, content=b'{"eventType":"read.completed"}', headers=forged).status_code == 401
    assert httpx.post(receiver, content=b"{}").status_code == 400

    first, second = control.linked_company_ids()[:2]
    wanted = {(first, "invoices"), (first, "payments"), (second, "invoices")}
    for company_id, data_type in sorted(wanted):
        queued = httpx.post(
            f"{codat_simulator.base_url}/companies/{company_id}/data/queue/{data_type}",
            headers=codat_simulator.auth_header,
        )
        assert queued.status_code == 200, queued.text
    control.reset_request_log()

    def finished_runs():
        runs = api.get(f"/dags/{DAG_ID}/dagRuns").json()["dag_runs"]
        if runs and all(run["state"] in ("success", "failed") for run in runs):
            return runs
        return None

    def landed(pairs: set, runs_at_least: int):
        def check():
            runs = finished_runs()
            if not runs or len(runs) < runs_at_least:
                return None
            files = read_run_files(destination)
            return (runs, files) if pairs <= set(files) else None

        return check

    started = time.monotonic()
    control.advance(600)  # the three syncs finish now, together: one message per company
    runs, files = until("the webhook's pairs to land", landed(wanted, 1), 600, proc, log_file, every=1)
    print(f"sync completed -> records landed: {time.monotonic() - started:.1f} s over {len(runs)} run(s)")
    assert all(run["state"] == "success" for run in runs), tail(log_file)
    assert all(run["run_type"] == "asset_triggered" for run in runs)

    # Exactly the pairs the webhooks named, each with exactly the simulator's records, each version once.
    assert set(files) == wanted
    for company_id, data_type in wanted:
        expected = simulator_versions(control, company_id, data_type)
        assert latest_versions(files[(company_id, data_type)]) == expected, (company_id, data_type)
    assert max(_version_counts(files).values()) == 1

    deliveries = control.webhook_deliveries()
    delivered = [d for d in deliveries if d["status"] == 200]
    assert len(delivered) == 4 and len({d["webhookId"] for d in delivered}) == 2  # 2 messages, each twice
    events = api.get("/assets/events", params={"limit": 100}).json()["asset_events"]
    from_webhooks = [e for e in events if (e.get("extra") or {}).get("source") == EVENT_SOURCE]
    # One asset event per changed pair, though every message came twice.
    assert sorted((e["extra"]["company_id"], e["extra"]["data_type"]) for e in from_webhooks) == sorted(
        wanted
    )

    # No refresh and no sync polling on this path: only the extract's reads (and its dataStatus check).
    paths = [entry["path"] for entry in control.request_log()]
    assert not [p for p in paths if "/data/queue" in p or "/data/all" in p or "/data/history" in p]
    assert sum("dataStatus" in p for p in paths) <= 2 * len(wanted)

    # A later change to one pair: the next run lands only the new versions, nothing twice.
    control.reset_request_log()
    control.mutate(first, "invoices", created=1, modified=2, deleted=1)
    runs, files = until(
        "the second change to land", landed(wanted, len(runs) + 1), 600, proc, log_file, every=1
    )
    assert all(run["state"] == "success" for run in runs), tail(log_file)
    assert latest_versions(files[(first, "invoices")]) == simulator_versions(control, first, "invoices")
    assert max(_version_counts(files).values()) == 1
    assert all(entry["path"].startswith(f"/companies/{first}/") for entry in control.request_log())
