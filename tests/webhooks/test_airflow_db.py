"""The plugin's app against a real Airflow metadata database (SQLite, migrated): the secret comes from the
``codat_default`` connection, a delivery is stored (inbox row and asset events) before it is answered and
queues ``codat_on_change``, events a run left out are queued again, and processes racing on the same
``webhook-id``s write each once.

Runs the app in a subprocess with the test Airflow home's environment, as the API server would load it.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.airflow_cli import AirflowCLI

# One worker runs this module: its module-scoped fixture is costly to build (pytest-xdist --dist loadgroup).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("test_airflow_db")]

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "codat_on_change.py"
DELETED_DAG_FILE = DAG_FILE.with_name("codat_on_company_deleted.py")
PORTFOLIO_DAG_FILE = DAG_FILE.with_name("codat_portfolio.py")
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
COMPANY = "0498e921-9b53-4396-a412-4f2f5983b0a2"
RESULT_MARK = "CODAT-TEST-RESULT "  # the scripts' result line: what else they print is logs

# Posts a signed delivery as Codat does: a 503 is tried again (signed afresh). A fresh process's first look-up of the signing secret
# can take over the receiver's 5 s on a busy machine, and the receiver then answers 503 (Codat's retry lands it).
POST_LIKE_CODAT = textwrap.dedent(
    """
    import time as _time
    from datetime import UTC as _UTC, datetime as _datetime
    from fastapi.testclient import TestClient as _TestClient
    from standardwebhooks.webhooks import Webhook as _Webhook

    def post_like_codat(app, body, secret, webhook_id):
        for _ in range(5):
            now = _datetime.now(tz=_UTC)
            headers = {
                "webhook-id": webhook_id,
                "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": _Webhook(secret).sign(webhook_id, now, body),
            }
            response = _TestClient(app).post("/webhooks", content=body, headers=headers)
            if response.status_code != 503:
                break
            _time.sleep(1)
        return response.json()
    """
)
DELIVER = POST_LIKE_CODAT + textwrap.dedent(
    """
    import json, sys
    from airflow_provider_codat.webhooks.plugin import CodatWebhooksPlugin

    from airflow_provider_codat.webhooks.drain import drain_inbox

    (mounted,) = CodatWebhooksPlugin.fastapi_apps
    app = mounted["app"]
    app.state.parts.drainer = None  # drained below, in this thread, so the test knows when it is done
    body = sys.argv[1]
    answers = []
    for webhook_id in ("msg_db_1", "msg_db_1", "msg_db_2"):
        answers.append(post_like_codat(app, body, sys.argv[2], webhook_id))
    from sqlalchemy import func, select
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session
    with create_session() as session:
        before_drain = session.scalar(select(func.count()).select_from(AssetEvent))
    created, looked_at = drain_inbox()
    assert (before_drain, len(created), looked_at) == (0, 2, 2), (before_drain, created, looked_at)
    assert drain_inbox() == ([], 0)

    # A run that left the events out deletes the queue rows (apache/airflow#54659): the follow-up re-queues.
    from sqlalchemy import delete, select
    from airflow.models.asset import AssetDagRunQueue, AssetEvent
    from airflow.utils.session import create_session
    from airflow_provider_codat.webhooks.requeue import requeue_unconsumed

    with create_session() as session:
        ids = list(session.scalars(select(AssetEvent.id)))
        session.execute(delete(AssetDagRunQueue))
    pending = requeue_unconsumed(ids)
    again = requeue_unconsumed(ids)  # the row is back: nothing more to add
    with create_session() as session:
        rows = session.scalars(select(AssetDagRunQueue.target_dag_id)).all()
    print("CODAT-TEST-RESULT " + json.dumps({"answers": answers, "pending": sorted(pending), "again": sorted(again), "ids": ids,
                      "rows": rows}))
    """
)


# Another API server process: its memory of webhook-ids is empty, so only the database can tell a repeat.
DELIVER_AGAIN = POST_LIKE_CODAT + textwrap.dedent(
    """
    import json, sys
    from airflow_provider_codat.webhooks.plugin import CodatWebhooksPlugin

    (mounted,) = CodatWebhooksPlugin.fastapi_apps
    app = mounted["app"]
    body, secret, webhook_id = sys.argv[1:4]
    answer = post_like_codat(app, body, secret, webhook_id)
    print("CODAT-TEST-RESULT " + json.dumps(answer))
    """
)


@pytest.fixture(scope="module")
def own_airflow(tmp_path_factory, migrated_airflow_db) -> AirflowCLI:
    """A database of this test's own: the session's is shared with DAG tests whose extracts emit events on the
    same ``codat://`` assets (and may queue ``codat_on_change``), which would blur what the receiver wrote."""
    return AirflowCLI.create(tmp_path_factory.mktemp("webhooks-airflow-home"), migrated=migrated_airflow_db)


@pytest.fixture(scope="module")
def on_change_env(own_airflow, tmp_path_factory) -> dict[str, str]:
    """``codat_on_change`` and ``codat_on_company_deleted`` serialised and unpaused (so their ``codat://``
    assets exist); the environment."""
    dags = tmp_path_factory.mktemp("dags")
    shutil.copy(DAG_FILE, dags / DAG_FILE.name)
    shutil.copy(DELETED_DAG_FILE, dags / DELETED_DAG_FILE.name)
    shutil.copy(PORTFOLIO_DAG_FILE, dags / PORTFOLIO_DAG_FILE.name)
    env = {
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW_CONN_CODAT_DEFAULT": json.dumps(
            {"conn_type": "codat", "password": "key", "extra": {"webhook_secret": SECRET}}
        ),
    }
    for command in (
        ("dags", "reserialize"),
        ("dags", "unpause", "codat_on_change"),
        ("dags", "unpause", "codat_on_company_deleted"),
        ("dags", "unpause", "codat_portfolio_changes"),
    ):
        result = own_airflow.run(*command, extra_env=env, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
    return env


def run_app_script(airflow_cli: AirflowCLI, env: dict[str, str], script: str, *args: str) -> tuple[dict, str]:
    """Run ``script`` as an API server process would load the app; its result line (JSON), and all it printed."""
    proc = subprocess.run(
        [sys.executable, "-c", script, *args],
        env={**airflow_cli.env, **env},
        capture_output=True,
        text=True,
        timeout=420,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return _result_line(proc.stdout), proc.stdout + proc.stderr


def _result_line(output: str):
    """The script's marked result line: the drainer's thread may log to stdout after it."""
    (result,) = [line for line in output.splitlines() if line.startswith(RESULT_MARK)]
    return json.loads(result.removeprefix(RESULT_MARK))


def test_a_delivery_creates_asset_events_and_queues_the_dag_in_airflows_database(own_airflow, on_change_env):
    airflow_cli, env = own_airflow, on_change_env
    body = json.dumps(
        {
            "id": "743ec94a-8aa4-44bb-8bd4-e1855ee0e74b",
            "eventType": "read.completed",
            "generatedDate": "2026-11-26T10:00:00Z",
            "payload": {
                "referenceCompany": {"id": COMPANY, "name": "Bluebell Bakery"},
                "modifiedFromDate": "2026-11-25T10:00:00Z",
                "dataTypes": [
                    {
                        "dataType": "invoices",
                        "recordsModified": True,
                        "status": "Complete",
                        "connectionId": None,
                    },
                    {"dataType": "payments", "recordsModified": False, "status": "Complete"},
                ],
            },
        }
    )

    result, printed = run_app_script(airflow_cli, env, DELIVER, body, SECRET)
    answers = result["answers"]
    assert [a["message"] for a in answers] == ["accepted", "duplicate delivery ignored", "accepted"]
    assert SECRET not in printed
    with sqlite3.connect(airflow_cli.db_path) as db:
        events = db.execute(
            "select asset.uri, asset_event.extra from asset_event join asset on asset.id = asset_event.asset_id "
            "order by asset_event.id"
        ).fetchall()
        queued = db.execute(
            "select asset.uri from asset_dag_run_queue join asset on asset.id = asset_dag_run_queue.asset_id "
            "where target_dag_id = 'codat_on_change'"
        ).fetchall()
    # Two accepted messages (one duplicate dropped), each with one changed type.
    assert [uri for uri, _ in events] == ["codat://invoices/", "codat://invoices/"]
    extras = [json.loads(extra) for _, extra in events]
    assert [e["webhook_id"] for e in extras] == ["msg_db_1", "msg_db_2"]
    assert extras[0]["company_id"] == COMPANY and extras[0]["data_type"] == "invoices"
    assert queued == [("codat://invoices/",)]
    # Neither event was consumed by a run: both stay pending, and one queue row per (asset, DAG) came back.
    assert result["pending"] == result["again"] == sorted(result["ids"])
    assert result["rows"] == ["codat_on_change"]

    # Codat's retry of msg_db_1 reaches another API server process: the inbox's key says it is stored.
    answer, _ = run_app_script(airflow_cli, env, DELIVER_AGAIN, body, SECRET, "msg_db_1")
    assert answer["message"] == "duplicate delivery ignored"
    with sqlite3.connect(airflow_cli.db_path) as db:
        count = db.execute("select count(*) from asset_event").fetchone()[0]
        inbox = db.execute(
            "select webhook_id, event_type, company_id, asset_events from codat_webhook_inbox"
        ).fetchall()
    assert count == len(events) == 2
    assert sorted(inbox) == [
        ("msg_db_1", "read.completed", COMPANY, 1),
        ("msg_db_2", "read.completed", COMPANY, 1),
    ]


# Several threads in each of several processes store the same deliveries at once, as API server workers and
# replicas receiving Codat's duplicates would: the inbox's primary key lets one of them write each.
RACE = textwrap.dedent(
    """
    import json, sys, threading, time
    from airflow_provider_codat.datatypes import get_data_type
    from airflow_provider_codat.webhooks.deliveries import Delivery
    from airflow_provider_codat.webhooks.events import ChangeNotice
    from airflow_provider_codat.values import CompanyId
    from airflow_provider_codat.webhooks.store import store_delivery

    company, count, go = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    from sqlalchemy.exc import OperationalError
    from airflow_provider_codat.webhooks.drain import drain_inbox

    results, barrier = [], threading.Barrier(3)

    def store_all(offset):
        barrier.wait()
        for number in range(count):
            webhook_id = f"msg_race_{(number + offset) % count}"  # each thread starts elsewhere
            extra = {"source": "codat-webhook", "webhook_id": webhook_id, "company_id": company,
                     "data_type": "invoices"}
            notice = ChangeNotice(CompanyId.parse(company), get_data_type("invoices"), extra)
            delivery = Delivery(webhook_id, "read.completed", company, [notice])
            results.append(not store_delivery(delivery).duplicate)
            # Every thread drains too, as every API server process does: SQLite refuses a second writer
            # now and then ("database is locked"), which a drainer meets by trying again later.
            for _ in range(50):
                try:
                    drain_inbox(5)
                    break
                except OperationalError:
                    time.sleep(0.05)

    time.sleep(max(0.0, go - time.time()))
    threads = [threading.Thread(target=store_all, args=(n * 5,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    while True:  # whatever a locked database left undrained
        try:
            if drain_inbox(50)[1] == 0:
                break
        except OperationalError:
            time.sleep(0.05)
    print("CODAT-TEST-RESULT " + json.dumps(sum(results)))
    """
)


def test_processes_racing_on_the_same_webhook_ids_write_each_once(own_airflow, on_change_env):
    count = 15
    env = {**own_airflow.env, **on_change_env}
    go = time.time() + 6  # every process imports Airflow first, then all start together
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACE, COMPANY, str(count), str(go)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=300) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), [err[-2000:] for _, err in outputs]
    stored = sum(_result_line(out) for out, _ in outputs)
    with sqlite3.connect(own_airflow.db_path) as db:
        per_id = db.execute(
            "select json_extract(extra, '$.webhook_id'), count(*) from asset_event "
            "where json_extract(extra, '$.webhook_id') like 'msg_race_%' group by 1"
        ).fetchall()
        rows = db.execute(
            "select count(*) from codat_webhook_inbox where webhook_id like 'msg_race_%'"
        ).fetchone()
    assert stored == count  # 6 attempts per id, one "stored" each; every thread drained after its last

    assert len(per_id) == count and {n for _, n in per_id} == {1}
    assert rows == (count,)


# Codat deletes a company: the signed delivery is stored and drained into an event on
# codat://deleted-companies, which the forget task of codat_on_company_deleted gets as its triggering event.
FORGET = POST_LIKE_CODAT + textwrap.dedent(
    """
    import json, sys
    from types import SimpleNamespace
    from sqlalchemy import select
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.sdk import Asset
    from airflow.sdk.execution_time.context import TriggeringAssetEventsAccessor
    from airflow.utils.session import create_session
    from airflow_provider_codat.assets import DELETED_COMPANIES_URI
    from airflow_provider_codat.operators.tables import CodatForgetCompaniesOperator
    from airflow_provider_codat.webhooks.drain import drain_inbox
    from airflow_provider_codat.webhooks.plugin import CodatWebhooksPlugin

    (mounted,) = CodatWebhooksPlugin.fastapi_apps
    app = mounted["app"]
    app.state.parts.drainer = None  # drained below, in this thread
    body, secret, destination = sys.argv[1:4]
    answer = post_like_codat(app, body, secret, "msg_deleted_1")
    drain_inbox()
    uri = Asset(DELETED_COMPANIES_URI).uri
    with create_session() as session:
        events = [
            SimpleNamespace(asset=SimpleNamespace(name=uri, uri=uri), extra=event.extra, source_aliases=[])
            for event in session.scalars(
                select(AssetEvent).join(AssetModel, AssetModel.id == AssetEvent.asset_id).where(AssetModel.uri == uri)
            )
        ]
    context = {"triggering_asset_events": TriggeringAssetEventsAccessor.build(events)}
    result = CodatForgetCompaniesOperator(task_id="forget_companies", destination=destination).execute(context)
    print("CODAT-TEST-RESULT " + json.dumps({"answer": answer, "events": len(events), "result": result}))
    """
)


def test_a_company_deleted_delivery_takes_the_companys_rows_out_of_the_tables(
    own_airflow, on_change_env, tmp_path
):
    from deltalake import DeltaTable

    from tests.tables.test_deleted_companies import GONE, STAYS, land_and_merge

    land_and_merge(tmp_path, "run1", "2026-11-01T00:00:00Z")
    body = json.dumps(
        {
            "id": "ba29118f-5406-4e59-b05c-ba307ca38d01",
            "eventType": "company.deleted",
            "generatedDate": "2026-11-26T10:00:00Z",
            "payload": {"id": GONE, "name": "Bluebell Bakery", "dataConnections": []},
        }
    )
    result, _ = run_app_script(own_airflow, on_change_env, FORGET, body, SECRET, f"file://{tmp_path}")
    assert result["answer"]["message"] == "accepted" and result["events"] == 1
    assert result["result"]["companies"] == [GONE]
    for data_type in ("invoices", "payments"):
        table = DeltaTable(str(tmp_path / "_tables" / data_type)).to_pyarrow_table()
        assert set(table.column("_codat_company_id").to_pylist()) == {STAYS}
    with sqlite3.connect(own_airflow.db_path) as db:
        queued = db.execute(
            "select asset.uri from asset_dag_run_queue join asset on asset.id = asset_dag_run_queue.asset_id "
            "where target_dag_id = 'codat_on_company_deleted'"
        ).fetchall()
    assert queued == [("codat://deleted-companies/",)]  # the DAG's next run takes the deletion


# An API server process answers a delivery (stored) and is killed before its drainer writes the events; the
# next API server process to start looks at the inbox as its app starts (Airflow runs the mounted app's
# lifespan) and drains what waits, with no further delivery needed.
LEFT_UNDRAINED = POST_LIKE_CODAT + textwrap.dedent(
    """
    import json, sys, time
    from fastapi.testclient import TestClient
    from sqlalchemy import select
    from airflow.utils.session import create_session
    from airflow_provider_codat.webhooks.drainer_process import DrainerProcess
    from airflow_provider_codat.webhooks.inbox import INBOX
    from airflow_provider_codat.webhooks.plugin import CodatWebhooksPlugin, wake_for_undrained

    (mounted,) = CodatWebhooksPlugin.fastapi_apps
    app = mounted["app"]
    drainer, app.state.parts.drainer = app.state.parts.drainer, None  # killed before it drains
    body, secret = sys.argv[1:3]
    answer = post_like_codat(app, body, secret, "msg_left_1")

    def row():
        query = select(INBOX.c.processed_at, INBOX.c.asset_events).where(INBOX.c.webhook_id == "msg_left_1")
        with create_session() as session:
            return session.execute(query).one()

    waiting = row().processed_at is None
    app.state.parts.drainer = drainer
    with TestClient(app):  # the next API server process starts
        deadline = time.monotonic() + 240  # the drainer process imports Airflow: a minute or more on a busy 2-core machine
        while row().processed_at is None and time.monotonic() < deadline:
            time.sleep(0.2)
    drained = row()
    drainer.stop()
    idle = DrainerProcess()
    wake_for_undrained(idle)  # nothing waits now: no drainer process is started
    print("CODAT-TEST-RESULT " + json.dumps({"answer": answer, "waiting": waiting, "events": drained.asset_events, "idle": idle.pid}))
    """
)


def test_deliveries_a_killed_api_server_left_undrained_are_drained_when_the_next_one_starts(
    own_airflow, on_change_env
):
    body = json.dumps(
        {
            "id": "5d0c9a4e-0f0e-4a37-9d55-2f1f1f6b7c11",
            "eventType": "read.completed",
            "generatedDate": "2026-11-26T10:00:00Z",
            "payload": {
                "referenceCompany": {"id": COMPANY, "name": "Bluebell Bakery"},
                "dataTypes": [{"dataType": "payments", "recordsModified": True, "status": "Complete"}],
            },
        }
    )
    result, _ = run_app_script(own_airflow, on_change_env, LEFT_UNDRAINED, body, SECRET)
    assert result["answer"]["message"] == "accepted" and result["waiting"]
    assert result["events"] == 1 and result["idle"] is None
    with sqlite3.connect(own_airflow.db_path) as db:
        extras = [
            json.loads(extra)
            for (extra,) in db.execute(
                "select asset_event.extra from asset_event join asset on asset.id = asset_event.asset_id "
                "where asset.uri = 'codat://payments/'"
            )
        ]
    assert [e["webhook_id"] for e in extras] == ["msg_left_1"]


# With [codat] webhook_route = portfolio, read.completed deliveries gather for a window and become ONE event on
# codat://portfolio-changes (portfolio/route.py), written with the rows' processed_at in one transaction.
PORTFOLIO_ROUTE = POST_LIKE_CODAT + textwrap.dedent(
    """
    import json, os, sys
    from sqlalchemy import func, select
    from airflow.models.asset import AssetDagRunQueue, AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from airflow_provider_codat.webhooks.drain import drain_inbox
    from airflow_provider_codat.webhooks.inbox import INBOX
    from airflow_provider_codat.webhooks.plugin import CodatWebhooksPlugin

    (mounted,) = CodatWebhooksPlugin.fastapi_apps
    app = mounted["app"]
    app.state.parts.drainer = None  # drained below
    secret = sys.argv[1]
    for webhook_id, body in json.loads(sys.argv[2]).items():
        post_like_codat(app, json.dumps(body), secret, webhook_id)
    os.environ["AIRFLOW__CODAT__PORTFOLIO_WINDOW_SECONDS"] = "3600"
    early = drain_inbox()  # the window is open: nothing yet
    os.environ["AIRFLOW__CODAT__PORTFOLIO_WINDOW_SECONDS"] = "0"
    created, _ = drain_inbox()
    again = drain_inbox()
    with create_session() as session:
        events = session.execute(
            select(AssetModel.uri, AssetEvent.extra).join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetEvent.id.in_(created))
        ).all()
        unprocessed = session.scalar(select(func.count()).select_from(INBOX).where(INBOX.c.processed_at.is_(None)))
        queued = session.scalars(select(AssetDagRunQueue.target_dag_id)).all()
    print("CODAT-TEST-RESULT " + json.dumps({"early": early, "events": [[u, e] for u, e in events],
          "unprocessed": unprocessed, "again": again, "queued": sorted(set(queued))}))
    """
)


def test_the_portfolio_route_writes_one_event_per_window_for_many_deliveries(own_airflow, on_change_env):
    other = "1b5e3c2d-9a8f-4e7d-8c6b-5a4f3e2d1c0b"
    connection = "a3b1c2d4-0000-4000-8000-000000000001"

    def body(company, changed, quiet):
        summaries = [
            {"connectionId": connection, "dataType": t, "recordsModified": True, "status": "Complete"}
            for t in changed
        ] + [
            {"connectionId": connection, "dataType": t, "recordsModified": False, "status": "Complete"}
            for t in quiet
        ]
        return {
            "id": "ba29118f-5406-4e59-b05c-ba307ca38d02",
            "eventType": "read.completed",
            "generatedDate": "2026-12-08T10:00:00Z",
            "payload": {
                "referenceCompany": {"id": company},
                "modifiedFromDate": None,
                "dataTypes": summaries,
            },
        }

    bodies = {
        "msg_pf_1": body(COMPANY, ["invoices", "bankTransactions"], ["payments"]),
        "msg_pf_2": body(other, [], ["invoices"]),
    }
    env = {**on_change_env, "AIRFLOW__CODAT__WEBHOOK_ROUTE": "portfolio"}
    result, _ = run_app_script(own_airflow, env, PORTFOLIO_ROUTE, SECRET, json.dumps(bodies))
    assert result["early"] == [[], 0]
    (event,) = result["events"]  # two deliveries, three types: one event, none on codat://invoices
    assert event[0] == "codat://portfolio-changes/"
    companies = event[1]["companies"]
    assert companies[COMPANY]["changed"] == ["invoices", "bankTransactions"]
    assert companies[COMPANY]["connections"]["bankTransactions"] == [connection]
    assert companies[other] == {
        "changed": [],
        "heard": {"invoices": "2026-12-08T10:00:00Z"},
        "connections": {"invoices": [connection]},
    }
    assert event[1]["deliveries"] == 2 and result["unprocessed"] == 0 and result["again"] == [[], 0]
    assert "codat_portfolio_changes" in result["queued"]
