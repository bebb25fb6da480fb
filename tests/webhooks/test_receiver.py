"""The webhook receiver over HTTP (FastAPI's TestClient): what it accepts, refuses, and hands to Airflow."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from standardwebhooks.webhooks import Webhook

from airflow_provider_codat.datatypes import get_data_type
from airflow_provider_codat.values import CompanyId
from airflow_provider_codat.webhooks.dedupe import RecentIds
from airflow_provider_codat.webhooks.events import EVENT_SOURCE, is_change
from airflow_provider_codat.webhooks.receiver import ReceiverParts, create_receiver_app
from airflow_provider_codat.webhooks.secret import CachedVerifier
from airflow_provider_codat.webhooks.store import Stored
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
    """A store that keeps what it was given, one entry per webhook-id as the inbox's key does (and can fail,
    or take its time, first)."""

    def __init__(self, failures: int = 0, delay: float = 0.0) -> None:
        self.deliveries: list = []
        self.failures = failures
        self.delay = delay
        self.calls = 0

    def __call__(self, delivery) -> Stored:
        self.calls += 1
        time.sleep(self.delay)
        if self.failures:
            self.failures -= 1
            raise RuntimeError("database is down")
        if any(d.webhook_id == delivery.webhook_id for d in self.deliveries):
            return Stored(duplicate=True)
        self.deliveries.append(delivery)
        return Stored(duplicate=False)

    @property
    def batches(self) -> list[list]:
        """The notices of each stored delivery that had any."""
        return [list(d.notices) for d in self.deliveries if d.notices]


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
        verifier=CachedVerifier(lookup=lookup), seen=RecentIds(), store=written, max_body_bytes=4096
    )


@pytest.fixture
def client(parts):
    return TestClient(create_receiver_app(parts))


def client_with(lookup=lambda conn_id: SECRET, store=None, **options):
    """A client of a receiver whose secret comes from ``lookup`` and whose deliveries go to ``store``."""
    parts = ReceiverParts(
        verifier=CachedVerifier(lookup=lookup), seen=RecentIds(), store=store or Recorder(), **options
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
    (stored,) = written.batches
    batch = [n for n in stored if is_change(n.extra)]
    assert [n.asset_uri for n in batch] == ["codat://invoices", "codat://payments"]
    # bills: read, nothing changed (kept for the portfolio path's marks); creditNotes failed; notAType unknown.
    assert [n.extra["data_type"] for n in stored if not is_change(n.extra)] == ["bills"]
    assert batch[0].extra == {
        "source": EVENT_SOURCE,
        "webhook_id": "msg_a",
        "event_type": "read.completed",
        "company_id": COMPANY,
        "data_type": "invoices",
        "connection_id": CONNECTION,
        "modified_from_date": "2026-11-25T10:00:00Z",
        "generated_date": "2026-11-26T10:00:00Z",
    }


def test_notices_carry_the_checked_values_and_extras_of_plain_strings(client, parts, written):
    """The payload is parsed once: the notice carries a CompanyId and the catalogue entry; the event's extra
    holds plain str, which msgspec (Airflow's serialiser) refuses for str subclasses."""
    import msgspec

    body = read_completed(summary("invoices"), company=COMPANY.upper())
    assert post(client, *signed(body, "msg_typed")).is_success
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
    assert written.batches[0][0].extra["event_type"] == "read.completed.initial"


def test_a_duplicate_webhook_id_is_acted_on_once_even_when_re_signed_later(client, parts, written):
    body = read_completed(summary("invoices"))
    first = post(client, *signed(body, "msg_dup"))
    again = post(client, *signed(body, "msg_dup", at=time.time() + 30))  # a retry: new timestamp, same id
    assert first.json()["message"] == "accepted"
    assert again.status_code == 200 and again.json()["message"] == "duplicate delivery ignored"
    assert post(client, *signed(body, "msg_other")).json()["message"] == "accepted"
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
    assert written.batches == []


def test_a_read_with_nothing_changed_is_accepted_and_creates_nothing(client, parts, written):
    response = post(client, *signed(read_completed(summary("invoices", modified=False))))
    assert response.json() == {"status": 200, "message": "accepted", "asset_events": 0}
    # Stored as a quiet read (the portfolio path's record that Codat synced it), never an asset event.
    (batch,) = written.batches
    assert [n.extra["records_modified"] for n in batch] == [False]
    assert not any(is_change(n.extra) for n in batch)


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


def test_a_failed_store_answers_503_and_codats_retry_is_stored(caplog):
    store = Recorder(failures=1)
    client, _ = client_with(store=store)
    raw, headers = signed(read_completed(summary("invoices")), "msg_down")
    with caplog.at_level(logging.ERROR):
        assert post(client, raw, headers).status_code == 503
    assert "msg_down" in caplog.text and store.deliveries == []
    # Not remembered as seen: the retry goes to the database again, and lands.
    assert (
        post(client, *signed(read_completed(summary("invoices")), "msg_down")).json()["message"] == "accepted"
    )
    assert [d.webhook_id for d in store.deliveries] == ["msg_down"]


def test_a_store_slower_than_the_timeout_answers_503_in_time_and_its_retry_finds_it_stored():
    store = Recorder(delay=1.0)
    client, _ = client_with(store=store, store_timeout=0.2)
    body = read_completed(summary("invoices"))
    started = time.monotonic()
    assert post(client, *signed(body, "msg_slow")).status_code == 503
    assert time.monotonic() - started < 0.9
    # The abandoned store committed after all: the retry is answered 2xx and writes nothing again.
    store.delay = 0.0
    time.sleep(1.0)
    assert post(client, *signed(body, "msg_slow")).json()["message"] == "duplicate delivery ignored"
    assert len(store.deliveries) == 1


def test_a_delivery_another_process_stored_is_answered_2xx_as_a_duplicate():
    store = Recorder()
    first, _ = client_with(store=store)
    second, _ = client_with(store=store)  # its own id memory: only the store knows
    body = read_completed(summary("invoices"))
    assert post(first, *signed(body, "msg_twice")).json()["message"] == "accepted"
    assert post(second, *signed(body, "msg_twice")).json()["message"] == "duplicate delivery ignored"
    assert store.calls == 2 and len(store.deliveries) == 1


def test_a_repeat_of_an_id_this_process_stored_costs_no_store_call(client, written):
    body = read_completed(summary("invoices"))
    for _ in range(3):
        assert post(client, *signed(body, "msg_rep")).status_code == 200
    assert written.calls == 1


def test_the_id_memory_forgets_after_its_ttl_and_stays_bounded():
    now = [0.0]
    seen = RecentIds(ttl=10, max_ids=3, clock=lambda: now[0])
    assert seen.add("a") and not seen.add("a")
    assert "a" in seen and "b" not in seen
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


IMPORT_PLUGIN_LIKE_A_TASK = """
import sys
from airflow_provider_codat.webhooks.plugin import CodatWebhooksPlugin
app = CodatWebhooksPlugin.fastapi_apps[0]["app"]
print(sorted(route.path for route in app.routes if route.path.startswith("/health")))
print("airflow.api_fastapi.core_api.security" in sys.modules)
"""


def test_a_task_loading_plugins_does_not_import_the_api_server():
    # Every task process loads plugins for their macros: the health page's routes wait for the API server.
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_PLUGIN_LIKE_A_TASK],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert done.stdout.splitlines()[-2:] == ["[]", "False"]


def test_the_health_routes_are_added_once_when_the_api_server_starts():
    from airflow_provider_codat.webhooks.plugin import add_health_routes, build_app

    app = build_app()
    app.state.parts.drainer = None  # no drainer process from a test
    with TestClient(app):
        paths = [route.path for route in app.routes]
        assert "/health" in paths and "/health/data" in paths
    add_health_routes(app)  # a second start adds nothing
    assert [route.path for route in app.routes] == paths


def connection_event(event_type: str, status: str = "Deauthorized", company: str = COMPANY) -> dict:
    return {
        "id": "ba29118f-5406-4e59-b05c-ba307ca38d01",
        "eventType": event_type,
        "generatedDate": "2026-11-26T10:00:00Z",
        "payload": {
            "referenceCompany": {"id": company, "name": "Bluebell Bakery"},
            "connection": {
                "id": CONNECTION,
                "status": status,
                "platformName": "Xero",
                "linkUrl": "https://link.codat.io/x",
            },
        },
    }


@pytest.mark.parametrize(
    "event_type", ["connection.disconnected", "connection.failed", "connection.reconnected"]
)
def test_connection_problems_become_an_event_on_the_connection_status_asset(client, written, event_type):
    response = post(client, *signed(connection_event(event_type), "msg_conn"))
    assert response.json() == {"status": 200, "message": "accepted", "asset_events": 1}
    ((notice,),) = written.batches
    assert notice.asset_uri == "codat://connection-status"
    assert notice.extra == {
        "source": EVENT_SOURCE,
        "webhook_id": "msg_conn",
        "event_type": event_type,
        "company_id": COMPANY,
        "company_name": "Bluebell Bakery",
        "connection_id": CONNECTION,
        "platform": "Xero",
        "status": "Deauthorized",
        "link_url": "https://link.codat.io/x",
        "generated_date": "2026-11-26T10:00:00Z",
    }
    assert written.deliveries[0].company_id == COMPANY


def test_a_deleted_company_becomes_an_event_on_the_deleted_companies_asset(client, written):
    body = {
        "id": "ba29118f-5406-4e59-b05c-ba307ca38d01",
        "eventType": "company.deleted",
        "generatedDate": "2026-11-26T10:00:00Z",
        "payload": {"id": COMPANY.upper(), "name": "Bluebell Bakery", "dataConnections": []},
    }
    assert post(client, *signed(body, "msg_del")).status_code == 200
    ((notice,),) = written.batches
    assert notice.asset_uri == "codat://deleted-companies"
    assert notice.extra["company_id"] == COMPANY and notice.extra["deleted_at"] == "2026-11-26T10:00:00Z"


@pytest.mark.parametrize(
    ("event_type", "reached"), [("client.rateLimit.reached", True), ("client.rateLimit.reset", False)]
)
def test_rate_limit_events_are_noted_and_stored_on_the_rate_limit_asset(
    client, written, caplog, event_type, reached
):
    body = {
        "id": "743ec94a-8aa4-44bb-8bd4-e1855ee0e74b",
        "eventType": event_type,
        "generatedDate": "2026-11-26T10:00:00Z",
        "payload": {
            "dailyQuota": 12000,
            "quotaRemaining": 0 if reached else 12000,
            "expiryDate": "2026-11-27T00:00:00Z",
        },
    }
    with caplog.at_level(logging.INFO):
        assert post(client, *signed(body, "msg_rate")).status_code == 200
    ((notice,),) = written.batches
    assert notice.asset_uri == "codat://rate-limit"
    assert notice.extra["reached"] is reached and notice.extra["daily_quota"] == 12000
    assert written.deliveries[0].company_id is None
    assert ("used up" in caplog.text) is reached


@pytest.mark.parametrize(
    "body",
    [
        connection_event("connection.disconnected", company="not-a-uuid"),
        {"eventType": "connection.failed", "payload": "nope"},
        {"eventType": "company.deleted", "payload": {"id": "not-a-uuid"}},
    ],
    ids=["bad-company", "payload-string", "deleted-bad-company"],
)
def test_malformed_status_events_get_400_and_store_nothing(client, written, body):
    response = post(client, *signed(body))
    assert response.status_code == 400
    assert "not-a-uuid" not in response.text and written.deliveries == []


def test_rate_limit_events_tell_the_shared_request_budget(client, monkeypatch):
    """A quota used up stops every request of the deployment at once, and its reset lets them go again."""
    from airflow_provider_codat.budget import budget_for, budget_settings_from
    from airflow_provider_codat.errors import CodatQuotaExhaustedError

    monkeypatch.setenv("AIRFLOW_CONN_CODAT_DEFAULT", '{"conn_type": "codat", "password": "key"}')
    budget = budget_for(budget_settings_from({}, "codat_default", "https://api.codat.io"))

    def event(event_type: str, remaining: int, webhook_id: str, expires_in: float) -> None:
        expiry = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + expires_in))
        payload = {"dailyQuota": 12000, "quotaRemaining": remaining, "expiryDate": expiry}
        body = {"id": webhook_id, "eventType": event_type, "generatedDate": expiry, "payload": payload}
        assert post(client, *signed(body, webhook_id)).status_code == 200
        budget._quota = (float("-inf"), None)  # look at the store again, as another process would

    event("client.rateLimit.reached", 0, "msg_reached", 3600)
    with pytest.raises(CodatQuotaExhaustedError, match="used up"):
        budget.check_quota(starts_work=False, method="GET", path="/companies")
    event("client.rateLimit.reset", 11993, "msg_reset", 3600 + 86400)
    budget.check_quota(starts_work=True, method="GET", path="/companies")
