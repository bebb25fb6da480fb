"""The plain refresh functions (sync/queueing.py) on a fake hook, and the rule that what leaves for Airflow is plain:
tickets, trigger kwargs and events hold plain strings, never the checked value types (msgspec refuses them)."""

from __future__ import annotations

import uuid

import msgspec
import pytest

from airflow_provider_codat.errors import CodatAPIError, CodatDatasetInProgressError, CodatValidationError
from airflow_provider_codat.sync.queueing import queue_data_types, refresh_all_data
from airflow_provider_codat.sync.ticket import Ticket, WaitSpec, make_ticket
from airflow_provider_codat.sync.wait import Wait, make_event
from airflow_provider_codat.triggers.sync import CodatSyncTrigger
from airflow_provider_codat.values import CompanyId, DatasetId


def uid(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name))


CO = CompanyId.parse(uid("co"))


def entry(status: str, latest: str) -> dict:
    return {"currentStatus": status, "latestSyncId": latest, "latestSuccessfulSyncId": latest}


class FakeHook:
    """``data/queue`` answers a new id (or the in-progress error for ``running`` types); ``dataStatus`` and
    ``data/history`` come from lists; every call is recorded."""

    def __init__(self, running=None, statuses=None, history=None, data_all_error=None):
        self.running = running or {}
        self.statuses = list(statuses or [])
        self.history = history or []
        self.data_all_error = data_all_error
        self.calls: list[tuple] = []

    def queue_data_type(self, company_id, data_type, connection_id=None):
        self.calls.append(("queue", data_type, connection_id))
        if data_type in self.running:
            raise CodatDatasetInProgressError(
                f"running: {self.running[data_type]}", data_type=data_type, dataset_id=self.running[data_type]
            )
        return {"id": uid(f"queued-{data_type}")}

    def get_data_status(self, company_id, **kw):
        self.calls.append(("dataStatus",))
        return self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]

    def refresh_all_data(self, company_id):
        self.calls.append(("data/all",))
        if self.data_all_error is not None:
            raise self.data_all_error

    def iter_pull_operations(self, company_id, *, query=None, order_by=None):
        self.calls.append(("history", query, order_by))
        return iter(self.history)


def test_queue_joins_a_running_sync_or_raises_codats_error():
    hook = FakeHook(running={"payments": uid("running")})
    ticket = queue_data_types(hook, CO, ["invoices", "payments"])
    assert ticket == {
        "company_id": CO,
        "requested_at": ticket["requested_at"],
        "datasets": {"invoices": uid("queued-invoices"), "payments": uid("running")},
        "joined": ["payments"],
    }
    msgspec.json.encode(ticket)  # plain: fit for XCom
    with pytest.raises(CodatDatasetInProgressError, match=uid("running")):
        queue_data_types(hook, CO, ["payments"], if_in_progress="fail")
    with pytest.raises(CodatValidationError, match="if_in_progress"):
        queue_data_types(hook, CO, ["payments"], if_in_progress="sometimes")


def test_refresh_all_rereads_then_history_then_queues_what_is_still_missing():
    before = {"invoices": entry("Complete", uid("old-inv")), "bills": entry("Complete", uid("old-bill"))}
    history = [
        {"id": uid("new-inv"), "dataType": "invoices"},
        {"id": uid("old-bill"), "dataType": "bills"},  # known before the call: not ours
    ]
    hook = FakeHook(statuses=[before], history=history)
    ticket = refresh_all_data(
        hook, CO, ["invoices", "bills", "purchaseOrders"], reread_attempts=2, reread_delay=0
    )
    assert ticket["datasets"] == {
        "bills": uid("queued-bills"),
        "invoices": uid("new-inv"),
        "purchaseOrders": uid("queued-purchaseOrders"),
    }
    kinds = [call[0] for call in hook.calls]
    assert kinds == [
        "dataStatus",
        "data/all",
        "dataStatus",
        "dataStatus",
        "dataStatus",
        "history",
        "queue",
        "queue",
    ]


def test_refresh_all_without_types_raises_the_lost_answer_when_nothing_shows():
    status = {"invoices": entry("Complete", uid("old-inv"))}
    lost = CodatAPIError("Codat answered 503", status_code=503)
    hook = FakeHook(statuses=[status], data_all_error=lost)
    with pytest.raises(CodatAPIError, match="503"):
        refresh_all_data(hook, CO, reread_attempts=0, reread_delay=0)
    hook = FakeHook(statuses=[status, {"invoices": entry("Queued", uid("new-inv"))}])
    assert refresh_all_data(hook, CO, reread_attempts=0)["datasets"] == {"invoices": uid("new-inv")}


def test_checked_inside_plain_outside():
    ticket = Ticket.parse(make_ticket(CO, "t", {"invoices": uid("d")}, []))
    assert type(ticket.company_id) is CompanyId and type(ticket.datasets["invoices"]) is DatasetId
    assert all(type(v) is str for v in ticket.to_json()["datasets"].values())
    spec = WaitSpec.from_ticket(ticket.to_json())
    assert type(spec.company_id) is CompanyId and type(spec.to_json()["company_id"]) is str
    wait = Wait(spec, deadline=2e9, started_at=1e9)
    trigger = CodatSyncTrigger.for_wait(wait, "codat_default")
    _, kwargs = trigger.serialize()
    msgspec.json.encode(kwargs)  # the triggerer's comms refuse str subclasses
    assert kwargs["datasets"] == {"invoices": uid("d")} and trigger.spec.company_id is spec.company_id
    event = make_event("success", spec.company_id)
    assert type(event["company_id"]) is str


def test_a_trigger_with_bad_kwargs_still_serializes_them_plain():
    trigger = CodatSyncTrigger(company_id=CO, datasets={"invoices": "not-an-id"}, deadline=2e9)
    assert trigger.spec is None and "dataset id of invoices" in str(trigger.invalid)
    _, kwargs = trigger.serialize()
    assert type(kwargs["company_id"]) is str
    msgspec.json.encode(kwargs)
