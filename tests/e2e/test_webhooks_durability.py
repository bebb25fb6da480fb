"""Nothing answered 2xx is lost, nothing is written twice: signed deliveries at a steady rate from the simulator's
sender (its own process, as in `make stack`) to the receiver on a real api-server over Postgres, while the
database is stopped for a few seconds and then the api-server is killed with SIGKILL and restarted.

Afterwards every message has exactly one asset event in Postgres, every message answered 2xx at least once is
among them, and every message that got a 5xx or no answer was retried until one attempt was answered 2xx. The
figures (messages, attempts, kills, lost, doubled, p99 answer time) are printed: ``-s`` shows them.

Opt-in: runs when CODAT_E2E=1 (CI sets it); Debian's postgresql and redis-server must be installed. About two
minutes, most of it starting Postgres and the api-server.

    CODAT_E2E=1 .venv/bin/python -m pytest -s tests/e2e/test_webhooks_durability.py
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import time
from collections import defaultdict

import httpx
import pytest
from local_airflow import AIRFLOW  # tools/, on pytest's pythonpath
from stack import Stack

from tests.e2e.stack_root import stack_root
from tests.e2e.test_stack import HttpControl

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

RATE = 20  # messages a second
SECONDS = 30
# Codat retries for about 28 hours; compressed so that a message survives a restart and an outage, also on a
# machine busy with other tests (an api-server then takes minutes, not seconds, to answer again).
RETRY_SECONDS = [1, 2, 4, 8] + [15] * 30


@pytest.fixture(scope="module")
def api_stack():
    """Postgres, the simulator and the api-server only (no scheduler: nothing consumes the events)."""
    root = stack_root("the webhook durability test", "codat-webhooks-")
    stack = Stack(root=root, companies=1, records=1, components=("api-server",))
    try:
        stack.start(timeout=300)
        # The asset codat://invoices exists once a DAG that uses it is serialised (no dag-processor here).
        reserialize = subprocess.run(
            [AIRFLOW, "dags", "reserialize"], env=stack.env(), capture_output=True, text=True, timeout=300
        )
        assert reserialize.returncode == 0, reserialize.stdout + reserialize.stderr
        yield stack
    finally:
        stack.stop()
        shutil.rmtree(root, ignore_errors=True)


def _wait_answering(stack: Stack, timeout: float = 120) -> float:
    """Until the api-server answers again; the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if httpx.get(f"{stack.ui_url}/api/v2/monitor/health", timeout=2).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    pytest.fail(f"the api-server did not come back within {timeout} s: see {stack.logs / 'api-server.log'}")


def _restart_api_server(stack: Stack) -> float:
    stack.kill("api-server")
    stack.spawn("api-server")
    return _wait_answering(stack)


def _events_per_message(stack: Stack) -> dict[str, int]:
    import psycopg2

    settings = stack.settings()
    db = psycopg2.connect(settings["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace("+psycopg2", ""))
    try:
        with db.cursor() as cursor:
            cursor.execute(
                "select extra::json->>'webhook_id', count(*) from asset_event "
                "where extra::json->>'source' = 'codat-webhook' group by 1"
            )
            return dict(cursor.fetchall())
    finally:
        db.close()


def _at(start: float, seconds: float) -> None:
    time.sleep(max(0.0, start + seconds - time.monotonic()))


def test_deliveries_survive_api_server_kills_and_a_database_outage_exactly_once(api_stack):
    stack = api_stack
    stack.configure_webhooks(retry_seconds=RETRY_SECONDS)
    control = HttpControl(stack.simulator_url)
    (company,) = control.linked_company_ids()[:1]
    sent = control.send_webhook_events(RATE * SECONDS, RATE, company, "invoices")
    start = time.monotonic()
    disruptions = []

    _at(start, 5)
    stack.stop_postgres()
    down = time.monotonic()
    time.sleep(4)
    stack.start_postgres()
    disruptions.append(("database stopped for", time.monotonic() - down))
    _at(start, 14)
    disruptions.append(("api-server killed, answering again after", _restart_api_server(stack)))

    assert control.wait_for_webhooks(timeout=sum(RETRY_SECONDS) + 60), "the sender still has messages"
    attempts = control.webhook_deliveries()
    # The answer waited for the inbox row; the drainers write the asset events right after.
    answered = time.monotonic()
    while len(events := _events_per_message(stack)) < len(sent) and time.monotonic() < answered + 60:
        time.sleep(1)
    drained_after = time.monotonic() - answered

    by_message: dict[str, list[dict]] = defaultdict(list)
    for attempt in attempts:
        by_message[attempt["webhookId"]].append(attempt)
    answered_2xx = {m for m, tries in by_message.items() if any(t["status"] == 200 for t in tries)}
    failed_first = {m for m, tries in by_message.items() if tries[0]["status"] != 200}
    lost = answered_2xx - set(events)
    doubled = {m for m, count in events.items() if count > 1}
    given_up = set(sent) - answered_2xx
    times = sorted(t["seconds"] for t in attempts if t["status"] == 200)
    p99 = times[int(0.99 * (len(times) - 1))]
    figures = {
        "messages": len(sent),
        "attempts": len(attempts),
        "answered 2xx": len(answered_2xx),
        "5xx answers": sum(t["status"] is not None and t["status"] >= 500 for t in attempts),
        "no answer (connection lost)": sum(t["status"] is None for t in attempts),
        "messages retried": len(failed_first),
        "kills": 1,
        "lost": len(lost),
        "doubled": len(doubled),
        "given up": len(given_up),
        "answer p50 ms": round(1000 * statistics.median(times), 1),
        "answer p99 ms": round(1000 * p99, 1),
        "disruptions": [f"{what} {seconds:.1f} s" for what, seconds in disruptions],
        "every event written, seconds after the last answer": round(drained_after, 1),
    }
    print("\nwebhook durability:", json.dumps(figures, indent=1))

    assert failed_first, "no delivery failed: the kills and the outage did not hit any"
    assert not given_up and not lost and not doubled, figures
    assert set(events) == set(sent)  # exactly one effect each, and nothing else
    # Every message that failed was retried until an attempt was answered 2xx.
    for message in failed_first:
        assert any(t["status"] == 200 for t in by_message[message][1:]), by_message[message]
