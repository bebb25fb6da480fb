from __future__ import annotations

import json

import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_codat.extract.state import (
    STATE_FILE,
    ExtractState,
    StateError,
    load_state,
    save_state,
)
from airflow_provider_codat.extract.watermark import Cursor

W1, W2 = "2026-01-01T00:00:01.0000000Z", "2026-01-01T00:00:02.0000000Z"


@pytest.fixture
def folder(tmp_path):
    return ObjectStoragePath(f"file://{tmp_path}/dest/c/invoices")


def test_missing_state_is_fresh(folder):
    state = load_state(folder, "c", "invoices")
    assert state.cursors == {} and state.last_run is None
    assert state.starting_cursors_for("run1") == {}


def test_round_trip_and_no_temporary_left(folder):
    state = ExtractState("c", "invoices").committed(
        "run1", {}, {"": Cursor(W1, frozenset({"a"}))}, {"records": 1}
    )
    save_state(folder, state)
    assert sorted(p.name for p in folder.iterdir()) == [STATE_FILE]
    loaded = load_state(folder, "c", "invoices")
    assert loaded.cursors == {"": Cursor(W1, frozenset({"a"}))}
    assert loaded.last_run["run_id"] == "run1"
    # Overwrite in place.
    save_state(
        folder, loaded.committed("run2", loaded.cursors, {"": Cursor(W2, frozenset())}, {"records": 0})
    )
    assert load_state(folder, "c", "invoices").cursors[""].watermark == W2
    assert sorted(p.name for p in folder.iterdir()) == [STATE_FILE]


def test_starting_point_of_new_retried_and_older_runs():
    before = {"": Cursor(W1, frozenset({"a"}))}
    after = {"": Cursor(W2, frozenset({"b"}))}
    state = ExtractState("c", "invoices").committed("run1", {}, before, {"records": 3})
    state = state.committed("run2", before, after, {"records": 2})
    # A new run starts where the last one ended.
    assert state.starting_cursors_for("run3") == after
    # The last run, retried, starts where it started the first time.
    assert state.starting_cursors_for("run2") == before
    # An older run has later runs on top of it: nothing to start.
    assert state.starting_cursors_for("run1") is None
    assert state.summary_of("run1") == {"records": 3}


def test_retrying_the_last_run_does_not_grow_history():
    state = ExtractState("c", "invoices").committed("run1", {}, {}, {"records": 1})
    state = state.committed("run1", {}, {}, {"records": 1})
    assert [entry["run_id"] for entry in state.runs] == ["run1"]


def test_corrupt_state_is_an_error_not_a_reset(folder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / STATE_FILE).write_text("{not json")
    with pytest.raises(StateError, match="full_refresh"):
        load_state(folder, "c", "invoices")
    (folder / STATE_FILE).write_text(json.dumps({"version": 99}))
    with pytest.raises(StateError):
        load_state(folder, "c", "invoices")


def test_failed_move_keeps_old_state_and_cleans_up(folder, monkeypatch):
    save_state(folder, ExtractState("c", "invoices").committed("run1", {}, {"": Cursor(W1)}, {}))
    fs = folder.fs

    def broken_mv(*args, **kwargs):
        raise OSError("disk gone")

    monkeypatch.setattr(type(fs), "mv", broken_mv)
    with pytest.raises(OSError):
        save_state(folder, ExtractState("c", "invoices").committed("run2", {}, {"": Cursor(W2)}, {}))
    monkeypatch.undo()
    assert load_state(folder, "c", "invoices").cursors[""].watermark == W1
    assert sorted(p.name for p in folder.iterdir()) == [STATE_FILE]
