"""The drainer thread: what it does with a failing database and with the events it wrote (a fake batch
function; the real one runs against Airflow's database in test_airflow_db.py)."""

from __future__ import annotations

import logging
import threading

from airflow_provider_codat.webhooks.drain import InboxDrainer
from airflow_provider_codat.webhooks.requeue import RequeueWatcher


class Batches:
    """Drains ``rows`` rows, failing ``failures`` times first; each row makes one event id."""

    def __init__(self, rows: int, failures: int = 0) -> None:
        self.rows, self.failures, self.calls = rows, failures, []
        self.done = threading.Event()

    def __call__(self, limit: int) -> tuple[list[int], int]:
        self.calls.append(limit)
        if self.failures:
            self.failures -= 1
            raise RuntimeError("database is down")
        taken = min(limit, self.rows)
        first = 1000 - self.rows
        self.rows -= taken
        if not self.rows:
            self.done.set()
        return list(range(first, first + taken)), taken


def test_batches_are_drained_until_one_comes_back_short_and_their_events_followed_up():
    batches = Batches(rows=25)
    watcher = RequeueWatcher(lambda ids: set(ids), every=3600)
    drainer = InboxDrainer(batches, watcher=watcher, batch=10)
    assert drainer.drain_all()
    assert batches.calls == [10, 10, 10]
    assert watcher.pending() == set(range(975, 1000))


def test_a_failing_database_is_tried_again_on_the_next_look_and_nothing_is_dropped(caplog):
    batches = Batches(rows=3, failures=2)
    drainer = InboxDrainer(batches, every=0.05)
    with caplog.at_level(logging.WARNING):
        drainer.wake()
        assert batches.done.wait(5), "the rows were not drained after the database came back"
    assert drainer.failures == 2 and batches.rows == 0
    assert "trying again" in caplog.text


def test_waking_drains_soon_without_waiting_for_the_next_look():
    batches = Batches(rows=1)
    drainer = InboxDrainer(batches, every=3600)
    drainer.wake()
    drainer.wake()
    assert batches.done.wait(5)
