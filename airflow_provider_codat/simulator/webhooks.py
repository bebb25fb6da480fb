"""Signed webhooks from the simulator: a ``read.completed`` to a URL whenever syncs finish, like Codat sends.

Syncs finish on the simulated clock and nothing else runs in the background, so a sender thread settles the
state every ``tick`` seconds; the syncs that finished since are grouped per company (and per first read or
not) into one message, signed the Standard Webhooks way (the ``standardwebhooks`` library, as Codat's Svix
does) and POSTed. Failed attempts are retried with backoff, each attempt signed afresh with the same
``webhook-id``, until an attempt is answered ``2xx`` or the retry schedule (``retry_seconds``) runs out. On
demand: ``duplicates`` (each message delivered again), ``delay`` (seconds before the first attempt),
``out_of_order`` (messages that fall due together go newest first), and :meth:`WebhookSender.send_events`, a
steady stream of messages for load and failure tests.
"""

from __future__ import annotations

import base64
import logging
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import httpx
from standardwebhooks.webhooks import Webhook

from airflow_provider_codat.simulator.clock import fmt

if TYPE_CHECKING:
    from airflow_provider_codat.simulator.syncs import Dataset
    from airflow_provider_codat.simulator.world import SimulatorState

log = logging.getLogger(__name__)

RETRY_SECONDS = (1.0, 2.0, 5.0)  # Codat's schedule, compressed: then the message is given up
DEFAULT_TICK = 0.2
_LOG_LIMIT = 10_000


def new_secret() -> str:
    """A fresh signing secret in Codat's (Svix's) format: ``whsec_`` and 24 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


@dataclass
class _Message:
    webhook_id: str
    body: str
    summary: dict
    due: float
    attempt: int = 0
    copy: int = 0
    sequence: int = 0


@dataclass
class _Completed:
    dataset: Dataset
    initial: bool
    modified: bool
    previous_finish: datetime | None


@dataclass
class WebhookSender:
    """Deliver signed ``read.completed`` webhooks for ``state``'s finished syncs to ``url``.

    :param state: the simulator state whose syncs are watched.
    :param url: where to POST (e.g. ``http://127.0.0.1:8080/codat/webhooks``).
    :param secret: the ``whsec_`` signing secret (a new one when empty).
    :param duplicates: extra deliveries of each message (same webhook-id, signed afresh).
    :param delay: seconds between a sync finishing and its first delivery.
    :param out_of_order: deliver messages that fall due together newest first.
    :param tick: seconds between looks at the state.
    :param retry_seconds: the waits before each retry of a failed attempt; then the message is given up.
    """

    state: SimulatorState
    url: str
    secret: str = ""
    duplicates: int = 0
    delay: float = 0.0
    out_of_order: bool = False
    tick: float = DEFAULT_TICK
    retry_seconds: tuple[float, ...] = RETRY_SECONDS
    deliveries: list[dict] = field(default_factory=list)
    _completed: list[_Completed] = field(default_factory=list)
    _outbox: list[_Message] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _sequence: int = 0
    _in_flight: int = 0

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError("The webhook URL must start with http:// or https://.")
        if self.duplicates < 0 or self.delay < 0:
            raise ValueError("duplicates and delay must not be negative.")
        if any(wait < 0 for wait in self.retry_seconds):
            raise ValueError("retry_seconds must not be negative.")
        self.secret = self.secret or new_secret()
        self._signer = Webhook(self.secret)

    # -- watching the state ------------------------------------------------------------------------
    def start(self) -> WebhookSender:
        self.state.sync_listeners.append(self._on_sync)
        self._thread = threading.Thread(target=self._run, name="codat-simulator-webhooks", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._on_sync in self.state.sync_listeners:
            self.state.sync_listeners.remove(self._on_sync)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=20)

    def _on_sync(self, dataset: Dataset, previous: Dataset | None, changes: dict | None) -> None:
        """Called under the state's lock when a sync finishes: note it, deliver later (no I/O here)."""
        modified = bool(changes and any(changes.get(kind) for kind in ("created", "modified", "deleted")))
        self._completed.append(
            _Completed(
                dataset, previous is None and changes is not None, modified, previous and previous.finish_at
            )
        )

    def send_events(self, count: int, rate: float, company_id: str, data_type: str = "invoices") -> list[str]:
        """Queue ``count`` ``read.completed`` messages for one company and data type, each with its own
        ``webhook-id``, falling due ``rate`` a second from now (a steady stream); their webhook ids.

        :param count: messages to send.
        :param rate: messages per second.
        :param company_id: the company every message names.
        :param data_type: the data type every message names (modified, complete).
        """
        if count < 0 or rate <= 0:
            raise ValueError("count must not be negative and rate must be positive.")
        ids = []
        with self.state.lock:
            start = time.monotonic()
            for number in range(count):
                webhook_id = "msg_" + uuid.uuid4().hex
                body = self._stream_body(company_id, data_type)
                summary = {"eventType": "read.completed", "companyId": company_id, "dataTypes": [data_type]}
                self._sequence += 1
                due = start + number / rate
                self._outbox.append(_Message(webhook_id, body, summary, due, sequence=self._sequence))
                ids.append(webhook_id)
        return ids

    def _stream_body(self, company_id: str, data_type: str) -> str:
        import json

        connection = {
            "connectionId": None,
            "dataType": data_type,
            "recordsModified": True,
            "status": "Complete",
        }
        body = {
            "id": str(uuid.uuid4()),
            "eventType": "read.completed",
            "generatedDate": fmt(self.state.clock.now()),
            "payload": {
                "referenceCompany": {"id": company_id},
                "modifiedFromDate": None,
                "dataTypes": [connection],
            },
        }
        return json.dumps(body, separators=(",", ":"))

    def pending(self) -> int:
        """Messages not yet delivered nor given up, and syncs not yet turned into messages."""
        with self.state.lock:
            return len(self._outbox) + len(self._completed) + self._in_flight

    # -- the sender thread -------------------------------------------------------------------------
    def _run(self) -> None:
        with httpx.Client(timeout=15.0) as client:
            while not self._stop.wait(self.tick):
                try:
                    self.state.settle()
                    self._compose()
                    for message in self._due():
                        self._deliver(client, message)
                except Exception:  # the thread must outlive one bad tick
                    log.exception("Simulator webhook sender: tick failed")

    def _compose(self) -> None:
        with self.state.lock:
            completed, self._completed = self._completed, []
            groups: dict[tuple[str, bool], list[_Completed]] = {}
            for item in completed:
                groups.setdefault((item.dataset.company_id, item.initial), []).append(item)
            now = time.monotonic()
            for (company_id, initial), items in groups.items():
                body, summary = self._body(company_id, initial, items)
                webhook_id = "msg_" + uuid.uuid4().hex
                for copy in range(1 + self.duplicates):
                    self._sequence += 1
                    self._outbox.append(
                        _Message(
                            webhook_id, body, summary, now + self.delay, copy=copy, sequence=self._sequence
                        )
                    )

    def _body(self, company_id: str, initial: bool, items: list[_Completed]) -> tuple[str, dict]:
        import json

        company = self.state.companies[company_id]
        finished = [item.previous_finish for item in items if item.previous_finish is not None]
        event_type = "read.completed.initial" if initial else "read.completed"
        data_types = [
            {
                "connectionId": item.dataset.connection_id,
                "dataType": item.dataset.data_type,
                "recordsModified": item.modified,
                "status": item.dataset.outcome,
                "issues": [],
            }
            for item in items
        ]
        body = {
            "id": str(uuid.uuid4()),
            "eventType": event_type,
            "generatedDate": fmt(self.state.clock.now()),
            "payload": {
                "referenceCompany": {
                    "id": company_id,
                    "name": company["name"],
                    "description": company["description"],
                    "links": {"portal": f"https://app.codat.io/companies/{company_id}/summary"},
                },
                "modifiedFromDate": fmt(min(finished)) if finished else None,
                "dataTypes": data_types,
            },
        }
        summary = {
            "eventType": event_type,
            "companyId": company_id,
            "dataTypes": [d["dataType"] for d in data_types],
            "datasetIds": [item.dataset.id for item in items],
        }
        return json.dumps(body, separators=(",", ":")), summary

    def _due(self) -> list[_Message]:
        with self.state.lock:
            now = time.monotonic()
            due = [m for m in self._outbox if m.due <= now]
            self._outbox = [m for m in self._outbox if m.due > now]
            self._in_flight = len(due)
        due.sort(key=lambda m: m.sequence, reverse=self.out_of_order)
        return due

    def _deliver(self, client: httpx.Client, message: _Message) -> None:
        message.attempt += 1
        headers = {
            "webhook-id": message.webhook_id,
            "webhook-timestamp": str(int(time.time())),
            "content-type": "application/json",
        }
        headers["webhook-signature"] = self._signer.sign(
            message.webhook_id,
            datetime.fromtimestamp(int(headers["webhook-timestamp"]), tz=UTC),
            message.body,
        )
        started = time.monotonic()
        try:
            status = client.post(self.url, content=message.body.encode(), headers=headers).status_code
        except httpx.HTTPError as exc:
            status, error = None, type(exc).__name__
        else:
            error = None
        entry = {
            **message.summary,
            "webhookId": message.webhook_id,
            "copy": message.copy,
            "attempt": message.attempt,
            "status": status,
            "error": error,
            "sentAt": time.time(),
            "seconds": round(time.monotonic() - started, 4),
        }
        with self.state.lock:
            self._in_flight -= 1
            self.deliveries.append(entry)
            del self.deliveries[:-_LOG_LIMIT]
            if (status is None or not 200 <= status < 300) and message.attempt <= len(self.retry_seconds):
                message.due = time.monotonic() + self.retry_seconds[message.attempt - 1]
                self._outbox.append(message)


def stop_webhooks(state: SimulatorState) -> None:
    """Stop ``state``'s webhook sender, if it has one (a state being replaced or reset)."""
    sender = state.webhook_sender
    if sender is not None:
        state.webhook_sender = None
        sender.stop()


class WebhookControl:
    """The control API's webhook operations (mixed into ``SimulatorControl``; ``self.state`` is the state)."""

    state: SimulatorState

    def configure_webhooks(
        self,
        url: str,
        secret: str | None = None,
        duplicates: int = 0,
        delay: float = 0.0,
        out_of_order: bool = False,
        retry_seconds: list[float] | None = None,
    ) -> dict:
        """Deliver a signed ``read.completed`` to ``url`` whenever syncs finish (replaces any earlier setup).
        Returns ``{"url", "secret"}``: put the secret in the receiver's ``webhook_secret``.

        :param url: where to POST, e.g. ``http://127.0.0.1:8080/codat/webhooks``.
        :param secret: the ``whsec_`` signing secret; a new one when omitted.
        :param duplicates: extra deliveries of each message (same webhook-id).
        :param delay: seconds between a sync finishing and its first delivery.
        :param out_of_order: deliver messages that fall due together newest first.
        :param retry_seconds: waits before each retry of a failed attempt (default 1, 2 and 5 s; Codat's own
            schedule runs for about 28 hours).
        """
        state = self.state
        stop_webhooks(state)
        retries = RETRY_SECONDS if retry_seconds is None else tuple(float(wait) for wait in retry_seconds)
        sender = WebhookSender(
            state,
            url,
            secret or "",
            int(duplicates),
            float(delay),
            bool(out_of_order),
            retry_seconds=retries,
        )
        state.webhook_sender = sender.start()
        return {"url": sender.url, "secret": sender.secret}

    def webhook_deliveries(self) -> list[dict]:
        """Every delivery attempt so far: ``webhookId``, ``eventType``, ``companyId``, ``dataTypes``,
        ``datasetIds``, ``copy``, ``attempt``, ``status`` (``None`` when the URL was unreachable), ``sentAt``."""
        sender = self.state.webhook_sender
        if sender is None:
            return []
        with self.state.lock:
            return [dict(entry) for entry in sender.deliveries]

    def wait_for_webhooks(self, timeout: float = 10.0) -> bool:
        """Wait until every sync queued so far has finished and its messages are delivered or given up;
        ``True`` if so.

        :param timeout: seconds to wait at most.
        """
        sender = self.state.webhook_sender
        deadline = time.monotonic() + float(timeout)
        while sender is not None and (sender.pending() or self.state._pending):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def send_webhook_events(
        self, count: int, rate: float, company_id: str, data_type: str = "invoices"
    ) -> list[str]:
        """Send ``count`` ``read.completed`` messages at ``rate`` a second (see :meth:`WebhookSender.send_events`);
        their webhook ids. Needs :meth:`configure_webhooks` first."""
        sender = self.state.webhook_sender
        if sender is None:
            raise ValueError("configure_webhooks first: there is no webhook URL to send to.")
        return sender.send_events(int(count), float(rate), str(company_id), str(data_type))

    def stop_webhooks(self) -> None:
        """Deliver no more webhooks."""
        stop_webhooks(self.state)


WEBHOOK_OPERATIONS = (
    "configure_webhooks",
    "webhook_deliveries",
    "wait_for_webhooks",
    "send_webhook_events",
    "stop_webhooks",
)
