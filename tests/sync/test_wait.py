"""The shared wait machinery without HTTP: interval growth, calls per poll, event checks, argument parsing."""

from __future__ import annotations

import json
import uuid

import pytest

from airflow_provider_codat.datatypes import UnknownDataTypeError
from airflow_provider_codat.errors import (
    CodatAPIError,
    CodatSyncFailedError,
    CodatSyncTimeoutError,
    CodatValidationError,
    is_transient,
)
from airflow_provider_codat.operators.refresh import derive_refreshed
from airflow_provider_codat.sync import decision as ss
from airflow_provider_codat.sync.interval import next_interval
from airflow_provider_codat.sync.ticket import WaitSpec, normalize_data_types, parse_ticket
from airflow_provider_codat.sync.wait import resolve_event
from airflow_provider_codat.sync.watcher import SyncWatcher

TYPES = ["invoices", "payments", "bills", "customers", "suppliers"]


def test_interval_doubles_to_the_cap_and_depends_only_on_time_waited():
    waited, steps = 0.0, []
    for _ in range(9):
        step = next_interval(5, 300, waited)
        steps.append(step)
        waited += step
    assert steps == [5, 10, 20, 40, 80, 160, 300, 300, 300]
    # A restart that knows only when the wait began continues at the same pace.
    assert next_interval(5, 300, 35) == 40


def uid(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name))


CO, OLD, NEW, NEWER = uid("co"), uid("old"), uid("new"), uid("newer")


class FakeHook:
    """dataStatus and history from dicts; counts calls."""

    def __init__(self, status, history=None):
        self.status = status
        self.history = history or {}
        self.calls: list[str] = []

    def get_data_status(self, company_id, deadline=None):
        self.calls.append("dataStatus")
        return self.status

    def get_pull_operation(self, company_id, dataset_id, deadline=None):
        self.calls.append(f"history/{dataset_id}")
        return self.history[dataset_id]


def status_of(current, latest, success=None):
    return {"currentStatus": current, "latestSyncId": latest, "latestSuccessfulSyncId": success}


def test_one_data_status_call_per_poll_whatever_the_number_of_types():
    datasets = {t: uid(f"new-{t}") for t in TYPES}
    hook = FakeHook({t: status_of("Fetching", uid(f"new-{t}"), uid(f"old-{t}")) for t in TYPES})
    watcher = SyncWatcher(WaitSpec(CO, datasets=datasets))
    for _ in range(3):
        result = watcher.poll(hook)
        assert not result.done and set(result.pending) == set(TYPES)
    assert hook.calls == ["dataStatus"] * 3


def test_history_is_asked_again_only_when_data_status_changes_or_rarely():
    hook = FakeHook(
        {"invoices": status_of("Complete", OLD, OLD)},
        {NEW: {"id": NEW, "status": "Queued"}},
    )
    watcher = SyncWatcher(WaitSpec(CO, datasets={"invoices": NEW}))
    for _ in range(3):
        assert not watcher.poll(hook).done
    assert hook.calls == ["dataStatus", f"history/{NEW}", "dataStatus", "dataStatus"]
    # dataStatus moves on: look again.
    hook.status = {"invoices": status_of("Queued", NEWER, OLD)}
    hook.history[NEW] = {"id": NEW, "status": "Complete", "completed": "2026-11-21T10:00:00Z"}
    result = watcher.poll(hook)
    assert result.done and result.outcomes["invoices"]["status"] == "Complete"
    assert hook.calls[-2:] == ["dataStatus", f"history/{NEW}"]


def test_a_finished_type_stays_finished_and_polls_stop_when_all_are():
    hook = FakeHook({"invoices": status_of("Complete", NEW, NEW)})
    watcher = SyncWatcher(WaitSpec(CO, datasets={"invoices": NEW}))
    assert watcher.poll(hook).done
    hook.status = {"invoices": status_of("FetchError", NEWER, NEW)}
    assert watcher.poll(hook).outcomes["invoices"]["status"] == "Complete"
    assert hook.calls == ["dataStatus"]


def test_wait_spec_requires_synced_after_without_a_ticket():
    with pytest.raises(CodatValidationError, match="synced_after"):
        WaitSpec(CO, data_types=["invoices"])
    with pytest.raises(CodatValidationError):
        WaitSpec(CO)


OK = {"invoices": ss.outcome("Complete", "a")}
BAD = {"invoices": ss.outcome("FetchError", "a", error_message="nope")}


@pytest.mark.parametrize(
    "event",
    [
        None,
        "success",
        {"status": "done", "outcomes": OK},
        {"status": "success"},
        {"status": "success", "outcomes": {}},
    ],
)
def test_resolve_event_rejects_anything_unexpected(event):
    with pytest.raises(CodatAPIError):
        resolve_event(event)


def test_resolve_event_outcomes():
    assert resolve_event({"status": "success", "company_id": "co", "outcomes": OK}) == OK
    with pytest.raises(CodatSyncFailedError, match="invoices: FetchError.*nope"):
        resolve_event({"status": "failed", "company_id": "co", "outcomes": BAD})
    # A success label never hides a failed type.
    with pytest.raises(CodatSyncFailedError):
        resolve_event({"status": "success", "company_id": "co", "outcomes": BAD})
    assert resolve_event({"status": "failed", "outcomes": BAD}, fail_on_error=False) == BAD
    with pytest.raises(CodatSyncTimeoutError, match="still running"):
        resolve_event({"status": "timeout", "message": "Timed out after 60 s ...; still running: x"})
    with pytest.raises(CodatAPIError, match="401"):
        resolve_event({"status": "error", "message": "Codat API error 401"})


def test_transient_errors():
    assert is_transient(CodatAPIError("x", status_code=None))
    assert is_transient(CodatAPIError("x", status_code=503))
    assert is_transient(CodatAPIError("x", status_code=429))
    assert not is_transient(CodatAPIError("x", status_code=404))
    assert not is_transient(ValueError("x"))
    assert not is_transient(CodatAPIError("malformed", status_code=200))


def test_normalize_data_types():
    assert normalize_data_types("invoices, payments") == ["invoices", "payments"]
    assert normalize_data_types("['invoices', 'bills']") == ["invoices", "bills"]
    assert normalize_data_types(("invoices", "invoices")) == ["invoices"]
    assert normalize_data_types(None, required=False) is None
    with pytest.raises(UnknownDataTypeError):
        normalize_data_types(["invoices", "nonsense"])
    with pytest.raises(ValueError):
        normalize_data_types([])


def test_parse_ticket_from_rendered_string():
    ticket = {"company_id": CO, "requested_at": "t", "datasets": {"invoices": NEW}, "joined": []}
    assert parse_ticket(str(ticket)) == ticket
    assert parse_ticket(json.dumps(ticket)) == ticket
    with pytest.raises(ValueError, match="ticket"):
        parse_ticket({"company_id": CO})


@pytest.mark.parametrize(
    ("ticket", "named"),
    [
        ({"company_id": "c", "datasets": {"invoices": NEW}}, "ticket company_id must be a UUID"),
        ({"company_id": CO, "datasets": {"nonsense": NEW}}, "Unknown Codat data type 'nonsense'"),
        ({"company_id": CO, "datasets": {"invoices": "../../x"}}, "dataset id of invoices must be a UUID"),
        ({"company_id": CO, "datasets": {"invoices": NEW, "bills": 7}}, "dataset id of bills"),
        ({"company_id": CO, "datasets": {"invoices": NEW}, "joined": ["bills"]}, "joined"),
        ("x" * 30_000, "30000-character string"),
        ("not a ticket", "ticket must be what a Codat refresh operator returns"),
    ],
)
def test_a_ticket_is_checked_in_full(ticket, named):
    with pytest.raises(CodatValidationError, match=named):
        parse_ticket(ticket)
    with pytest.raises(CodatValidationError, match=named):
        WaitSpec.from_ticket(ticket)


def test_derive_refreshed_new_joined_and_untouched():
    before = {
        "invoices": status_of("Complete", "inv-old", "inv-old"),
        "payments": status_of("Fetching", "pay-running", "pay-old"),
        "bills": status_of("Complete", "bill-old", "bill-old"),
    }
    after = {
        "invoices": status_of("Queued", "inv-new", "inv-old"),
        "payments": status_of("Fetching", "pay-running", "pay-old"),
        "bills": status_of("Complete", "bill-old", "bill-old"),
    }
    datasets, joined = derive_refreshed(before, after, {"invoices", "payments", "bills"})
    assert datasets == {"invoices": "inv-new", "payments": "pay-running"}
    assert joined == ["payments"]
    # Limited to listed types.
    assert derive_refreshed(before, after, {"invoices"}, limit=["invoices"]) == ({"invoices": "inv-new"}, [])
