"""A simulated portfolio day for the tests and the bench: Codat syncing on its own schedule, its webhooks turned
into the drainer's ``codat://portfolio-changes`` extras by the provider's own code (receiver parsing, portfolio
route), with no Airflow database in between."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from airflow_provider_codat.hooks.codat import CodatHook
from airflow_provider_codat.portfolio.route import portfolio_extra
from airflow_provider_codat.simulator.webhooks import WebhookSender
from airflow_provider_codat.webhooks.deliveries import delivery_of

DAY = 24 * 3600


class Deliveries:
    """Collects the simulator's ``read.completed`` messages as Codat composes them (signed bodies, not sent)."""

    def __init__(self, state) -> None:
        self.state = state
        self.sender = WebhookSender(state, "http://127.0.0.1:9/unused")
        state.sync_listeners.append(self.sender._on_sync)

    def take(self) -> list[dict[str, Any]]:
        """The messages composed since the last take, as parsed bodies with their webhook ids."""
        self.state.settle()
        self.sender._compose()
        with self.state.lock:
            messages, self.sender._outbox = self.sender._outbox, []
        return [{"webhook_id": m.webhook_id, "body": json.loads(m.body)} for m in messages]

    def extras(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The extra of the one portfolio event the drainer writes for ``messages``."""
        rows = []
        for message in messages:
            body = message["body"]
            delivery = delivery_of(body, body["eventType"], message["webhook_id"])
            rows.append((delivery.webhook_id, delivery.company_id, delivery.notices))
        return [portfolio_extra(rows)] if rows else []


def schedule_daily(sim, data_types) -> list[str]:
    """Every linked company syncs ``data_types`` daily on Codat's side; their ids."""
    hook = CodatHook()
    companies = sim.control.linked_company_ids()
    for company_id in companies:
        settings = [
            {"dataType": key, "fetchOnFirstLink": True, "syncSchedule": 24, "syncOrder": n}
            for n, key in enumerate(data_types)
        ]
        hook.set_company_sync_settings(company_id, settings)
    return companies


def requests_by_endpoint(log: list[dict[str, Any]]) -> Counter:
    """Requests counted by endpoint kind: ``dataStatus``, ``queue``, ``history`` (a sync's record), ``companies``
    (the list), ``company`` (one), ``connections``, ``syncSettings``, or a data type's read (its last path
    segment; ``bankAccounts`` is the listing bank transactions need)."""
    counts: Counter = Counter()
    for entry in log:
        path = entry["path"]
        if path.endswith("/dataStatus"):
            counts["dataStatus"] += 1
        elif "/data/queue/" in path or path.endswith("/data/all"):
            counts["queue"] += 1
        elif "/data/history" in path:
            counts["history"] += 1
        elif path == "/companies":
            counts["companies"] += 1
        elif path.count("/") == 2:
            counts["company"] += 1
        elif path.endswith("/connections"):
            counts["connections"] += 1
        elif path.endswith("/syncSettings"):
            counts["syncSettings"] += 1
        else:
            counts[path.rsplit("/", 1)[-1]] += 1
    return counts
