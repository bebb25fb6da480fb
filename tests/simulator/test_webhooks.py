"""The simulator's webhooks, delivered over HTTP to the provider's real receiver (its store records)."""

from __future__ import annotations

import threading

import httpx
import pytest

from airflow_provider_codat.simulator.server import serve_in_thread
from airflow_provider_codat.webhooks.dedupe import RecentIds
from airflow_provider_codat.webhooks.receiver import ReceiverParts, create_receiver_app
from airflow_provider_codat.webhooks.secret import CachedVerifier
from airflow_provider_codat.webhooks.store import Stored
from tests.simulator.cli import get_when_up, simulator_cli


class Receiver:
    """The provider's receiver app on a free loopback port, writing notices to a list."""

    def __init__(self) -> None:
        self.secret: str | None = None
        self.notices: list = []
        self._lock = threading.Lock()
        self.parts = ReceiverParts(
            verifier=CachedVerifier(lookup=lambda conn_id: self.secret, ttl=0),
            seen=RecentIds(),
            store=self._store,
        )
        self.server, self.thread, base = serve_in_thread(create_receiver_app(self.parts))
        self.url = base + "/webhooks"

    def _store(self, delivery) -> Stored:
        with self._lock:
            self.notices.extend(delivery.notices)
        return Stored(duplicate=False)

    def pairs(self) -> list[tuple[str, str]]:
        return [(n.extra["company_id"], n.extra["data_type"]) for n in self.notices]

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def module_receiver():
    receiver = Receiver()
    yield receiver
    receiver.stop()


@pytest.fixture
def receiver(module_receiver):
    module_receiver.notices.clear()
    module_receiver.parts.seen = RecentIds()
    return module_receiver


def configure(codat_simulator, receiver, **options) -> str:
    setup = codat_simulator.control.configure_webhooks(receiver.url, **options)
    receiver.secret = setup["secret"]
    assert setup["secret"].startswith("whsec_")
    return setup["secret"]


@pytest.mark.codat_simulator(companies=2, records=5, sync_seconds=0.3)
def test_a_sync_finishing_on_its_own_is_delivered_signed_and_becomes_an_asset_event(
    codat_simulator, receiver
):
    configure(codat_simulator, receiver)
    company_id = codat_simulator.control.linked_company_ids()[0]
    response = httpx.post(
        f"{codat_simulator.base_url}/companies/{company_id}/data/queue/invoices",
        headers=codat_simulator.auth_header,
    )
    assert response.status_code == 200
    # Nobody polls: the sender settles the state itself once the sync's time is up.
    assert codat_simulator.control.wait_for_webhooks(timeout=10)
    (delivery,) = codat_simulator.control.webhook_deliveries()
    assert delivery["status"] == 200 and delivery["eventType"] == "read.completed"
    assert delivery["datasetIds"] == [response.json()["id"]]
    assert receiver.pairs() == [(company_id, "invoices")]
    extra = receiver.notices[0].extra
    assert extra["webhook_id"] == delivery["webhookId"]
    assert extra["connection_id"] == response.json()["connectionId"]
    assert extra["modified_from_date"]  # the previous successful sync's time
    log = codat_simulator.control.request_log()
    assert not [entry for entry in log if "dataStatus" in entry["path"]]


@pytest.mark.codat_simulator(companies=1, records=5, initial_syncs=False)
def test_a_first_read_is_read_completed_initial_and_mutate_sends_read_completed(codat_simulator, receiver):
    configure(codat_simulator, receiver)
    control = codat_simulator.control
    company_id = control.companies()[0]["id"]
    control.set_sync_seconds(0)
    httpx.post(
        f"{codat_simulator.base_url}/companies/{company_id}/data/queue/invoices",
        headers=codat_simulator.auth_header,
    )
    assert control.wait_for_webhooks()
    control.mutate(company_id, "invoices", modified=1)
    assert control.wait_for_webhooks()
    kinds = [d["eventType"] for d in control.webhook_deliveries()]
    assert kinds == ["read.completed.initial", "read.completed"]
    assert receiver.pairs() == [(company_id, "invoices")] * 2


@pytest.mark.codat_simulator(companies=1, records=5, sync_seconds=0)
def test_a_failed_sync_is_delivered_but_creates_no_asset_event(codat_simulator, receiver):
    configure(codat_simulator, receiver)
    control = codat_simulator.control
    company_id = control.companies()[0]["id"]
    control.fail_next_sync(company_id, "invoices")
    httpx.post(
        f"{codat_simulator.base_url}/companies/{company_id}/data/queue/invoices",
        headers=codat_simulator.auth_header,
    )
    assert control.wait_for_webhooks()
    (delivery,) = control.webhook_deliveries()
    assert delivery["status"] == 200
    assert receiver.pairs() == []


@pytest.mark.codat_simulator(companies=3, records=5)
def test_duplicates_and_out_of_order_deliveries_land_once_each(codat_simulator, receiver):
    configure(codat_simulator, receiver, duplicates=2, delay=0.5, out_of_order=True)
    control = codat_simulator.control
    companies = [c["id"] for c in control.companies()]
    for company_id in companies:
        control.mutate(company_id, "invoices", modified=1)
    assert control.wait_for_webhooks()
    deliveries = control.webhook_deliveries()
    assert len(deliveries) == 9 and all(d["status"] == 200 for d in deliveries)
    assert len({d["webhookId"] for d in deliveries}) == 3
    # Out of order: the last company's message went first.
    assert deliveries[0]["companyId"] == companies[-1]
    assert deliveries[0]["sentAt"] - min(d["sentAt"] for d in deliveries) >= 0
    assert sorted(receiver.pairs()) == sorted((c, "invoices") for c in companies)


@pytest.mark.codat_simulator(companies=1, records=5)
def test_refused_deliveries_are_retried_with_the_same_id_and_a_fresh_signature(codat_simulator, receiver):
    configure(codat_simulator, receiver)
    receiver.secret = None  # the receiver is not configured yet: 503
    control = codat_simulator.control
    company_id = control.companies()[0]["id"]
    control.mutate(company_id, "invoices", modified=1)
    deadline_hit = not control.wait_for_webhooks(timeout=0.6)
    assert deadline_hit  # a retry is scheduled
    receiver.secret = control.state.webhook_sender.secret
    assert control.wait_for_webhooks(timeout=10)
    attempts = control.webhook_deliveries()
    assert [a["status"] for a in attempts] == [503, 200]
    assert attempts[0]["webhookId"] == attempts[1]["webhookId"]
    assert receiver.pairs() == [(company_id, "invoices")]


@pytest.mark.codat_simulator(companies=1, records=5)
def test_a_retry_schedule_of_its_own_is_followed_then_the_message_given_up(codat_simulator, receiver):
    configure(codat_simulator, receiver, retry_seconds=[0.1, 0.1])
    receiver.secret = None  # every attempt answered 503
    control = codat_simulator.control
    company_id = control.companies()[0]["id"]
    control.mutate(company_id, "invoices", modified=1)
    assert control.wait_for_webhooks(timeout=10)
    attempts = control.webhook_deliveries()
    assert [(a["attempt"], a["status"]) for a in attempts] == [(1, 503), (2, 503), (3, 503)]
    with pytest.raises(ValueError, match="negative"):
        control.configure_webhooks(receiver.url, retry_seconds=[-1])


@pytest.mark.codat_simulator(companies=1, records=5)
def test_a_steady_stream_sends_each_message_once_at_the_rate_asked(codat_simulator, receiver):
    configure(codat_simulator, receiver)
    control = codat_simulator.control
    company_id = control.companies()[0]["id"]
    ids = control.send_webhook_events(20, 20.0, company_id, "payments")
    assert control.wait_for_webhooks(timeout=10)
    attempts = control.webhook_deliveries()
    assert sorted(a["webhookId"] for a in attempts) == sorted(ids) and len(set(ids)) == 20
    assert all(a["status"] == 200 for a in attempts)
    sent = sorted(a["sentAt"] for a in attempts)
    assert sent[-1] - sent[0] >= 0.6  # 20 at 20 a second span ~0.95 s (in 0.2 s ticks), not one burst
    assert receiver.pairs() == [(company_id, "payments")] * 20


@pytest.mark.codat_simulator(companies=1, records=5)
def test_webhooks_are_configured_over_http_too(codat_simulator, receiver):
    response = httpx.post(
        f"{codat_simulator.base_url}/_simulator/configure_webhooks",
        json={"url": receiver.url, "duplicates": 1},
    )
    assert response.status_code == 200
    receiver.secret = response.json()["result"]["secret"]
    company_id = codat_simulator.control.companies()[0]["id"]
    codat_simulator.control.mutate(company_id, "payments", created=1)
    assert httpx.post(f"{codat_simulator.base_url}/_simulator/wait_for_webhooks").json()["result"] is True
    deliveries = httpx.get(f"{codat_simulator.base_url}/_simulator/webhook_deliveries").json()["result"]
    assert [d["copy"] for d in deliveries] == [0, 1]
    assert receiver.pairs() == [(company_id, "payments")]
    bad = httpx.post(f"{codat_simulator.base_url}/_simulator/configure_webhooks", json={"url": "ftp://x"})
    assert bad.status_code == 400 and "http://" in bad.text


def test_resetting_the_state_stops_its_sender(codat_simulator, receiver):
    configure(codat_simulator, receiver)
    sender = codat_simulator.state.webhook_sender
    codat_simulator.control.reset(companies=1)
    assert sender._stop.is_set() and not sender._thread.is_alive()
    assert codat_simulator.control.webhook_deliveries() == []


def test_the_command_line_configures_webhooks(receiver):
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    receiver.secret = secret
    flags = ["--webhook-url", receiver.url, "--webhook-secret", secret, "--webhook-duplicates", "1"]
    with simulator_cli("--companies", "1", *flags) as (process, port):
        banner = "".join(iter(process.stdout.readline, "Ctrl-C to stop.\n"))
        assert f"Webhooks: {receiver.url}" in banner
        assert f'"webhook_secret": "{secret}"' in banner  # the printed Airflow connection carries it
        base = f"http://127.0.0.1:{port}/_simulator"
        company_id = get_when_up(f"{base}/companies").json()["result"][0]["id"]
        httpx.post(f"{base}/mutate", json={"company_id": company_id, "data_type": "invoices", "modified": 1})
        assert httpx.post(f"{base}/wait_for_webhooks").json()["result"] is True
        deliveries = httpx.get(f"{base}/webhook_deliveries").json()["result"]
        assert [(d["copy"], d["status"]) for d in deliveries] == [(0, 200), (1, 200)]
        assert receiver.pairs() == [(company_id, "invoices")]
