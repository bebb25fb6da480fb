"""The webhook receiver over HTTP (FastAPI's TestClient): what it accepts, refuses, and hands to Airflow."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from standardwebhooks.webhooks import Webhook

from airflow_provider_codat.datatypes import get_data_type
from airflow_provider_codat.values import CompanyId
from airflow_provider_codat.webhooks.dedupe import RecentIds
from airflow_provider_codat.webhooks.events import EVENT_SOURCE
from airflow_provider_codat.webhooks.publisher import AssetEventPublisher
from airflow_provider_codat.webhooks.receiver import ReceiverParts, create_receiver_app
from airflow_provider_codat.webhooks.secret import CachedVerifier
from tests.moments import MOMENTS

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER_SECRET = "whsec_dGhpcyBpcyBub3QgdGhlIHJpZ2h0IHNlY3JldA=="
COMPANY = "0498e921-9b53-4396-a412-4f2f5983b0a2"
CONNECTION = "51baa045-4836-4317-a42e-3542e991e581"


def read_completed(*summaries: dict, event_type: str = "read.completed", company: str = COMPANY) -> dict:
    return {
        "id": "743ec94a-8aa4-44bb-8bd4-e1855ee0e74b",
        "eventType": event_type,
        "generatedDate": "2026-11-26T10:00:00Z",
        "payload": {
            "referenceCompany": {"id": company, "name": "Bluebell Bakery"},
            "modifiedFromDate": "2026-11-25T10:00:00Z",
            "dataTypes": list(summaries),
        },
    }


def summary(data_type: str, modified: bool = True, status: str = "Complete") -> dict:
    return {"connectionId": CONNECTION, "dataType": data_type, "recordsModified": modified, "status": status}


def signed(body: dict | bytes, webhook_id: str = "msg_1", secret: str = SECRET, at: float | None = None):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    moment = datetime.fromtimestamp(time.time() if at is None else at, tz=UTC)
    signature = Webhook(secret).sign(webhook_id, moment, raw.decode())
    headers = {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }
    return raw, headers


class Recorder:
    """A writer that keeps what it was given (and can fail a number of times first)."""

    def __init__(self, failures: int = 0) -> None:
        self.batches: list[list] = []
        self.failures = failures

    def __call__(self, notices) -> None:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("database is down")
        self.batches.append(list(notices))


@pytest.fixture
def written():
    return Recorder()


@pytest.fixture
def lookups():
    return []


@pytest.fixture
def parts(written, lookups):
    def lookup(conn_id):
        lookups.append(conn_id)
        return SECRET

    return ReceiverParts(
        verifier=CachedVerifier(lookup=lookup),
        publisher=AssetEventPublisher(written, backoff=0.01),
        seen=RecentIds(),
        max_body_bytes=4096,
    )


@pytest.fixture
def client(parts):
    return TestClient(create_receiver_app(parts))


def client_with(lookup=lambda conn_id: SECRET, writer=None, **publisher_options):
    """A client of a receiver whose secret comes from ``lookup`` and whose notices go to ``writer``."""
    parts = ReceiverParts(
        verifier=CachedVerifier(lookup=lookup),
        publisher=AssetEventPublisher(writer or Recorder(), **publisher_options),
        seen=RecentIds(),
    )
    return TestClient(create_receiver_app(parts)), parts


def post(client, raw, headers):
    return client.post("/webhooks", content=raw, headers=headers)


def test_a_signed_read_completed_becomes_one_asset_event_per_changed_complete_type(client, parts, written):
    body = read_completed(
        summary("invoices"),
        summary("payments"),
        summary("bills", modified=False),
        summary("creditNotes", status="FetchError"),
        summary("notAType"),
    )
    response = post(client, *signed(body, "msg_a"))
    assert response.status_code == 200, response.text
    assert response.json()["asset_events"] == 2
    assert parts.publisher.join()
    (batch,) = written.batches
    assert [n.asset_uri for n in batch] == ["codat://invoices", "codat://payments"]
    assert batch[0].extra == {
        "source": EVENT_SOURCE,
        "webhook_id": "msg_a",
        "event_type": "read.completed",
        "company_id": COMPANY,
        "data_type": "invoices",
        "connection_id": CONNECTION,
        "modified_from_date": "2026-11-25T10:00:00Z",
    }


def test_notices_carry_the_checked_values_and_extras_of_plain_strings(client, parts, written):
    """The payload is parsed once: the notice carries a CompanyId and the catalogue entry; the event's extra
    holds plain str, which msgspec (Airflow's serialiser) refuses for str subclasses."""
    import msgspec

    body = read_completed(summary("invoices"), company=COMPANY.upper())
    assert post(client, *signed(body, "msg_typed")).is_success
    assert parts.publisher.join()
    (notice,) = written.batches[0]
    assert isinstance(notice.company_id, CompanyId) and notice.company_id == COMPANY
    assert notice.data_type is get_data_type("invoices")
    assert notice.extra["company_id"] == COMPANY
    assert all(type(value) is str for value in notice.extra.values() if value is not None)
    assert msgspec.json.decode(msgspec.json.encode(notice.extra)) == notice.extra


def test_the_initial_read_counts_too(client, parts, written):
    assert post(
        client, *signed(read_completed(summary("invoices"), event_type="read.completed.initial"))
    ).is_success
    assert parts.publisher.join()
    assert written.batches[0][0].extra["event_type"] == "read.completed.initial"


def test_a_duplicate_webhook_id_is_acted_on_once_even_when_re_signed_later(client, parts, written):
    body = read_completed(summary("invoices"))
    first = post(client, *signed(body, "msg_dup"))
    again = post(client, *signed(body, "msg_dup", at=time.time() + 30))  # a retry: new timestamp, same id
    assert first.json()["message"] == "accepted"
    assert again.status_code == 200 and again.json()["message"] == "duplicate delivery ignored"
    assert post(client, *signed(body, "msg_other")).json()["message"] == "accepted"
    assert parts.publisher.join()
    assert [batch[0].extra["webhook_id"] for batch in written.batches] == ["msg_dup", "msg_other"]


def test_a_forged_delivery_does_not_use_up_its_webhook_id(client, parts, written):
    body = read_completed(summary("invoices"))
    assert post(client, *signed(body, "msg_x", secret=OTHER_SECRET)).status_code == 401
    assert post(client, *signed(body, "msg_x")).json()["message"] == "accepted"


def test_a_signature_made_with_another_secret_is_refused(client, written):
    response = post(client, *signed(read_completed(summary("invoices")), secret=OTHER_SECRET))
    assert response.status_code == 401
    assert response.json()["message"] == "signature does not match"
    assert written.batches == []


def test_a_body_changed_after_signing_is_refused(client, written):
    raw, headers = signed(read_completed(summary("invoices")))
    tampered = raw.replace(b"invoices", b"payments")
    assert post(client, tampered, headers).status_code == 401
    # Re-serialising the same JSON (spaces) also breaks the signature: it is over the raw bytes.
    reformatted = json.dumps(json.loads(raw), indent=1).encode()
    assert post(client, reformatted, headers).status_code == 401
    assert written.batches == []


@pytest.mark.parametrize(
    "signature",
    ["v1,not-base64!!!", "v1", "garbage", "v2,AAAA", "v1," + "A" * 500],
    ids=["bad-base64", "no-comma", "no-version", "other-version", "long"],
)
def test_junk_signatures_get_401_not_a_crash(client, signature):
    raw, headers = signed(read_completed(summary("invoices")))
    headers["webhook-signature"] = signature
    response = post(client, raw, headers)
    assert response.status_code == 401
    assert signature not in response.text


@pytest.mark.parametrize("offset", [-301, 301, -86400])
def test_timestamps_more_than_five_minutes_off_are_refused(client, written, offset):
    response = post(client, *signed(read_completed(summary("invoices")), at=time.time() + offset))
    assert response.status_code == 401
    assert "5 minutes" in response.json()["message"]
    assert written.batches == []


def test_timestamps_within_five_minutes_are_accepted(client):
    for offset in (-290, 290):
        raw, headers = signed(read_completed(summary("invoices")), f"msg_{offset}", at=time.time() + offset)
        assert post(client, raw, headers).status_code == 200


@pytest.mark.parametrize("clock_at", MOMENTS, indirect=True)
def test_the_five_minute_window_on_every_date(client, written, clock_at):
    # webhook-timestamp is epoch seconds: the window is 300 elapsed seconds across midnight and the DST hour.
    now = clock_at.timestamp()
    for offset in (-300, 0, 300):
        raw, headers = signed(read_completed(summary("invoices")), f"msg_{offset}", at=now + offset)
        assert post(client, raw, headers).status_code == 200, offset
    for offset in (-301, 301):
        raw, headers = signed(read_completed(summary("invoices")), f"msg_late_{offset}", at=now + offset)
        assert post(client, raw, headers).status_code == 401, offset
    assert len(written.batches) == 3


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_headers_get_400(client, missing):
    raw, headers = signed(read_completed(summary("invoices")))
    del headers[missing]
    response = post(client, raw, headers)
    assert response.status_code == 400
    assert "headers are required" in response.json()["message"]


@pytest.mark.parametrize(
    ("header", "value"),
    [("webhook-timestamp", "yesterday"), ("webhook-timestamp", "1e9"), ("webhook-id", "msg/../" + "x" * 300)],
)
def test_malformed_headers_get_400_without_echo(client, header, value):
    raw, headers = signed(read_completed(summary("invoices")))
    headers[header] = value
    response = post(client, raw, headers)
    assert response.status_code == 400
    assert value not in response.text


def test_an_oversized_body_is_refused_before_it_is_read_or_verified(client, parts, lookups):
    huge = b'{"eventType": "read.completed", "pad": "' + b"x" * 5000 + b'"}'
    response = post(client, *signed(huge))
    assert response.status_code == 413
    assert "xxxx" not in response.text
    assert lookups == []  # refused before the secret was even needed


def test_an_oversized_chunked_body_is_refused_while_streaming(client, lookups):
    raw, headers = signed(b'{"pad": "' + b"y" * 5000 + b'"}')

    def chunks():
        for start in range(0, len(raw), 1000):
            yield raw[start : start + 1000]

    response = client.post("/webhooks", content=chunks(), headers=headers)
    assert response.status_code == 413
    assert lookups == []


@pytest.mark.parametrize(
    "raw",
    [
        b"not json at all",
        b"[1, 2, 3]",
        b'{"payload": {}}',
        json.dumps(read_completed(summary("invoices"), company="not-a-uuid")).encode(),
        json.dumps(
            {"eventType": "read.completed", "payload": {"referenceCompany": {"id": COMPANY}}}
        ).encode(),
        json.dumps({"eventType": "read.completed", "payload": "nope"}).encode(),
        json.dumps(read_completed("invoices")).encode(),
    ],
    ids=[
        "not-json",
        "array",
        "no-event-type",
        "bad-company",
        "no-data-types",
        "payload-string",
        "bad-summary",
    ],
)
def test_signed_but_malformed_bodies_get_400_without_echo(client, written, raw):
    response = post(client, *signed(raw))
    assert response.status_code == 400
    assert "not-a-uuid" not in response.text and "nope" not in response.text
    assert written.batches == []


def test_non_utf8_bodies_are_refused(client):
    raw, headers = signed(b"{}")
    assert post(client, b"\xff\xfe{}", headers).status_code == 401


@pytest.mark.parametrize("event_type", ["company.created", "connection.deleted", "invoices.write.successful"])
def test_other_event_types_get_a_2xx_and_are_ignored(client, parts, written, event_type):
    body = {"id": "x", "eventType": event_type, "generatedDate": "2026-11-26T10:00:00Z", "payload": {}}
    response = post(client, *signed(body))
    assert response.status_code == 200
    assert response.json()["message"] == "event type ignored"
    assert parts.publisher.join()
    assert written.batches == []


def test_a_read_with_nothing_changed_is_accepted_and_creates_nothing(client, parts, written):
    response = post(client, *signed(read_completed(summary("invoices", modified=False))))
    assert response.json() == {"status": 200, "message": "accepted", "asset_events": 0}
    assert parts.publisher.join()
    assert written.batches == []


def test_the_secret_is_looked_up_once_per_ttl_not_per_delivery(client, lookups):
    for number in range(5):
        assert post(client, *signed(read_completed(summary("invoices")), f"msg_{number}")).status_code == 200
    assert lookups == ["codat_default"]


def test_no_secret_configured_answers_503_and_says_what_to_fix_in_the_log(caplog):
    client, _ = client_with(lookup=lambda conn_id: None)
    with caplog.at_level(logging.ERROR):
        response = post(client, *signed(read_completed(summary("invoices"))))
    assert response.status_code == 503
    assert "webhook_secret" in caplog.text and "codat_default" in caplog.text


def test_an_invalid_secret_is_never_logged(caplog):
    not_a_secret = "whsec_%%%not base64%%%"
    client, _ = client_with(lookup=lambda conn_id: not_a_secret)
    with caplog.at_level(logging.DEBUG):
        response = post(client, *signed(read_completed(summary("invoices"))))
    assert response.status_code == 503
    assert "not base64" not in caplog.text and "not base64" not in response.text


def test_a_slow_secret_lookup_answers_503_within_seconds(monkeypatch):
    from airflow_provider_codat.webhooks import receiver

    monkeypatch.setattr(receiver, "SECRET_LOOKUP_TIMEOUT", 0.2)

    def slow_lookup(conn_id):
        time.sleep(2)
        return SECRET

    client, _ = client_with(lookup=slow_lookup)
    started = time.monotonic()
    response = post(client, *signed(read_completed(summary("invoices"))))
    assert response.status_code == 503
    assert time.monotonic() - started < 1.5


def test_a_slow_database_does_not_slow_the_answer():
    def slow_writer(notices):
        time.sleep(1.0)

    client, _ = client_with(writer=slow_writer)
    started = time.monotonic()
    for number in range(3):
        assert post(client, *signed(read_completed(summary("invoices")), f"msg_{number}")).status_code == 200
    assert time.monotonic() - started < 2.5  # written in line, the three answers would take 3 s


def test_a_full_queue_answers_503_and_lets_the_retry_through():
    import threading

    release = threading.Event()
    written = []

    def blocked_writer(notices):
        release.wait(5)
        written.append(notices)

    client, parts = client_with(writer=blocked_writer, max_queued=1)
    body = read_completed(summary("invoices"))
    statuses = [post(client, *signed(body, f"msg_{n}")).status_code for n in range(3)]
    assert statuses[-1] == 503
    release.set()
    assert parts.publisher.join()
    # The refused id was forgotten: Codat's retry of it is accepted.
    assert post(client, *signed(body, "msg_2")).json()["message"] == "accepted"


def test_failed_writes_are_retried_then_succeed(parts):
    recorder = Recorder(failures=2)
    parts.publisher = AssetEventPublisher(recorder, backoff=0.01)
    client = TestClient(create_receiver_app(parts))
    assert post(client, *signed(read_completed(summary("invoices")))).status_code == 200
    assert parts.publisher.join()
    assert len(recorder.batches) == 1 and parts.publisher.written == 1


def test_writes_that_keep_failing_are_dropped_with_an_error(caplog):
    publisher = AssetEventPublisher(Recorder(failures=10), attempts=3, backoff=0.01)
    with caplog.at_level(logging.ERROR):
        assert publisher.submit("msg_z", ["notice"])
        assert publisher.join()
    assert publisher.dropped == 1
    assert "daily sync DAG" in caplog.text


def test_the_id_memory_forgets_after_its_ttl_and_stays_bounded():
    now = [0.0]
    seen = RecentIds(ttl=10, max_ids=3, clock=lambda: now[0])
    assert seen.add("a") and not seen.add("a")
    now[0] = 11
    assert seen.add("a")
    for name in "bcde":
        seen.add(name)
    assert len(seen) == 3
    assert seen.add("a")  # pushed out by newer ids


def test_the_plugin_mounts_the_receiver_at_codat_on_airflows_api_server():
    from airflow_provider_codat.version_compat import fastapi_plugin_apps
    from airflow_provider_codat.webhooks.plugin import CodatWebhooksPlugin

    apps = fastapi_plugin_apps()
    (mounted,) = [app for app in apps if app["name"] == "Codat webhooks"]
    assert mounted["url_prefix"] == "/codat"
    assert mounted is CodatWebhooksPlugin.fastapi_apps[0]
    routes = {(route.path, tuple(sorted(route.methods))) for route in mounted["app"].routes}
    assert ("/webhooks", ("POST",)) in routes
