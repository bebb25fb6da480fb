"""The decision logic alone, on plain dicts: when is an awaited type done, and how did it end."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from airflow_provider_codat.sync import decision as ss
from airflow_provider_codat.sync import status as st

OLD, NEW, NEWER = "old-dataset", "new-dataset", "newer-dataset"
T0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


def entry(current, latest, success=None, last=None):
    body = {"dataType": "invoices", "currentStatus": current, "latestSyncId": latest}
    if success:
        body["latestSuccessfulSyncId"] = success
    if last:
        body["lastSuccessfulSync"] = last
    return body


def operation(status, dataset_id=NEW, completed=None, requested="2026-11-21T10:00:01.0000000Z", error=None):
    body = {"id": dataset_id, "status": status, "requested": requested, "errorMessage": error}
    if completed:
        body["completed"] = completed
    return body


@pytest.mark.parametrize(
    ("status", "finished", "failed"),
    [
        ("Complete", True, False),
        ("NotSupported", True, False),
        ("FetchError", True, True),
        ("AuthError", True, True),
        ("Cancelled", True, True),
        ("RoutingError", True, True),
        ("Queued", False, False),
        ("Mapping", False, False),
        ("SomethingCodatAddsLater", False, False),
        (None, False, False),
    ],
)
def test_status_classes(status, finished, failed):
    assert st.is_finished(status) is finished
    assert st.is_failed(status) is failed


def test_previous_complete_sync_is_not_the_awaited_one():
    # dataStatus still shows the sync before ours as Complete: only history can say where ours is.
    decision = ss.decide_ticket(entry("Complete", OLD, OLD, "2026-11-20T00:00:00Z"), NEW)
    assert decision.state is ss.State.LOOKUP and decision.lookup == NEW


def test_awaited_dataset_running_is_pending():
    decision = ss.decide_ticket(entry("Fetching", NEW, OLD, "2026-11-20T00:00:00Z"), NEW)
    assert (decision.state, decision.status) == (ss.State.PENDING, "Fetching")


def test_unknown_status_of_awaited_dataset_is_pending():
    assert ss.decide_ticket(entry("Routing", NEW, OLD), NEW).state is ss.State.PENDING


def test_awaited_dataset_is_latest_successful():
    decision = ss.decide_ticket(entry("Fetching", NEWER, NEW, "2026-11-21T10:05:00Z"), NEW)
    assert decision.state is ss.State.DONE
    assert decision.outcome == ss.outcome("Complete", NEW, "2026-11-21T10:05:00Z")


def test_awaited_dataset_failed_is_looked_up_for_codat_message():
    decision = ss.decide_ticket(entry("FetchError", NEW, OLD, "2026-11-20T00:00:00Z"), NEW)
    assert decision.state is ss.State.LOOKUP and decision.lookup == NEW
    final = ss.decide_ticket_from_history(
        entry("FetchError", NEW, OLD, "2026-11-20T00:00:00Z"),
        NEW,
        operation("FetchError", completed="2026-11-21T10:01:00Z", error="Xero said no"),
    )
    assert final.outcome == ss.outcome("FetchError", NEW, "2026-11-20T00:00:00Z", "Xero said no")


def test_moved_past_history_decides():
    still = ss.decide_ticket_from_history(entry("Queued", NEWER), NEW, operation("Mapping"))
    assert (still.state, still.status) == (ss.State.PENDING, "Mapping")
    done = ss.decide_ticket_from_history(
        entry("Queued", NEWER), NEW, operation("Complete", completed="2026-11-21T10:02:00Z")
    )
    assert done.outcome["status"] == "Complete"
    assert done.outcome["last_successful_sync"] == "2026-11-21T10:02:00Z"


def test_missing_entry_is_looked_up():
    assert ss.decide_ticket(None, NEW).state is ss.State.LOOKUP


# --- since mode ------------------------------------------------------------------------------------------


def test_since_older_success_is_pending():
    decision = ss.decide_since(entry("Complete", OLD, OLD, "2026-11-21T09:59:59.9999999Z"), T0)
    assert (decision.state, decision.status) == (ss.State.PENDING, "Complete")


def test_since_newer_success_is_done():
    decision = ss.decide_since(entry("Complete", NEW, NEW, "2026-11-21T10:00:00.0000001Z"), T0)
    assert decision.outcome == ss.outcome("Complete", NEW, "2026-11-21T10:00:00.0000001Z")


def test_since_running_sync_waits_even_after_a_recent_success():
    decision = ss.decide_since(entry("Fetching", NEWER, NEW, "2026-11-21T10:05:00Z"), T0)
    assert decision.state is ss.State.PENDING


def test_since_failure_counts_only_when_after_synced_after():
    failed = entry("FetchError", NEW, OLD, "2026-11-20T00:00:00Z")
    decision = ss.decide_since(failed, T0)
    assert decision.state is ss.State.LOOKUP and decision.lookup == NEW
    stale = ss.decide_since_from_history(
        failed, T0, operation("FetchError", completed="2026-11-21T09:00:00Z")
    )
    assert stale.state is ss.State.PENDING
    fresh = ss.decide_since_from_history(
        failed, T0, operation("FetchError", completed="2026-11-21T10:01:00Z", error="boom")
    )
    assert fresh.outcome == ss.outcome("FetchError", NEW, "2026-11-20T00:00:00Z", "boom")


def test_since_never_synced_is_pending():
    assert ss.decide_since(None, T0).status == st.NOT_SYNCED


def test_since_not_supported_is_final():
    decision = ss.decide_since(entry("NotSupported", NEW), T0)
    assert decision.outcome["status"] == "NotSupported"


# --- summary ---------------------------------------------------------------------------------------------


def test_failure_message_lists_every_failed_type_with_status_and_codat_message():
    outcomes = {
        "invoices": ss.outcome("Complete", "a"),
        "payments": ss.outcome("FetchError", "b", error_message="Timeout talking to QuickBooks"),
        "bills": ss.outcome("AuthError", "c", error_message="Token expired"),
        "items": ss.outcome("NotSupported", "d"),
    }
    summary = ss.summarize(outcomes)
    assert not summary.succeeded
    assert set(summary.failed) == {"payments", "bills"}
    assert set(summary.warnings) == {"items"}
    message = summary.failure_message("co-1")
    assert "payments: FetchError" in message and "Timeout talking to QuickBooks" in message
    assert "bills: AuthError" in message and "Token expired" in message and "re-link" in message
    assert "invoices" not in message and "items" not in message


def test_not_supported_alone_succeeds():
    assert ss.summarize({"items": ss.outcome("NotSupported", "d")}).succeeded


def test_parse_timestamp_keeps_codat_seven_digit_precision_order():
    a = st.parse_timestamp("2026-11-21T10:00:00.1234567Z")
    assert a == datetime(2026, 11, 21, 10, 0, 0, 123456, tzinfo=UTC)
    assert st.parse_timestamp("2026-11-21T10:00:00") == datetime(2026, 11, 21, 10, tzinfo=UTC)
    assert st.parse_timestamp("not a date") is None
    assert st.parse_timestamp(None) is None
