from __future__ import annotations

import json

import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_codat.errors import StateError
from airflow_provider_codat.extract.state import (
    IDS_FOLDER,
    INLINE_IDS,
    ExtractState,
    load_state,
    save_state,
)
from airflow_provider_codat.extract.watermark import Cursor
from airflow_provider_codat.landing.layout import STATE_FILE

W1, W2 = "2026-01-01T00:00:01.0000000Z", "2026-01-01T00:00:02.0000000Z"


@pytest.fixture
def folder(tmp_path):
    return ObjectStoragePath(f"file://{tmp_path}/dest/c/invoices")


def commit(state: ExtractState, run_id: str, cursors: dict, summary: dict) -> ExtractState:
    return state.committed(run_id, cursors, summary, pending=None)


def test_missing_state_is_fresh(folder):
    state = load_state(folder, "c", "invoices")
    assert state.cursors == {} and state.last_run is None and state.pending is None


def test_round_trip_and_no_temporary_left(folder):
    state = commit(ExtractState("c", "invoices"), "run1", {"": Cursor(W1, frozenset({"a"}))}, {"records": 1})
    save_state(folder, state)
    assert sorted(p.name for p in folder.iterdir()) == [STATE_FILE]
    loaded = load_state(folder, "c", "invoices")
    assert loaded == state
    # Overwrite in place.
    save_state(folder, commit(loaded, "run2", {"": Cursor(W2, frozenset())}, {"records": 0}))
    assert load_state(folder, "c", "invoices").cursors[""].watermark == W2
    assert sorted(p.name for p in folder.iterdir()) == [STATE_FILE]


def test_a_large_id_set_goes_to_one_side_file_and_comes_back(folder):
    ids = frozenset(f"id-{n}\nwith newline" for n in range(INLINE_IDS + 1))
    save_state(folder, commit(ExtractState("c", "invoices"), "run1", {"": Cursor(W1, ids)}, {}))
    assert (folder / STATE_FILE).stat().st_size < 1000
    assert load_state(folder, "c", "invoices").cursors[""] == Cursor(W1, ids)
    # Once the set is small again, the side file goes.
    save_state(folder, commit(ExtractState("c", "invoices"), "run2", {"": Cursor(W2, frozenset({"a"}))}, {}))
    assert list((folder / IDS_FOLDER).iterdir()) == []


def test_version_1_states_still_load(folder):
    folder.mkdir(parents=True, exist_ok=True)
    old = {
        "version": 1,
        "company_id": "c",
        "data_type": "invoices",
        "cursors": {"": {"watermark": W1, "ids_at_watermark": ["a"]}},
        "last_run": {"run_id": "run1", "cursors_before": {}, "summary": {"records": 1}},
        "runs": [{"run_id": "run1", "summary": {"records": 1}}],
    }
    (folder / STATE_FILE).write_text(json.dumps(old))
    state = load_state(folder, "c", "invoices")
    assert state.cursors == {"": Cursor(W1, frozenset({"a"}))} and state.last_run["run_id"] == "run1"


def test_corrupt_state_is_an_error_not_a_reset(folder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / STATE_FILE).write_text("{not json")
    with pytest.raises(StateError, match="full_refresh"):
        load_state(folder, "c", "invoices")
    (folder / STATE_FILE).write_text(json.dumps({"version": 99}))
    with pytest.raises(StateError):
        load_state(folder, "c", "invoices")


def test_failed_move_keeps_old_state_and_cleans_up(folder, monkeypatch):
    save_state(folder, commit(ExtractState("c", "invoices"), "run1", {"": Cursor(W1)}, {}))
    fs = folder.fs

    def broken_mv(*args, **kwargs):
        raise OSError("disk gone")

    monkeypatch.setattr(type(fs), "mv", broken_mv)
    with pytest.raises(OSError):
        save_state(folder, commit(ExtractState("c", "invoices"), "run2", {"": Cursor(W2)}, {}))
    monkeypatch.undo()
    assert load_state(folder, "c", "invoices").cursors[""].watermark == W1
    assert sorted(p.name for p in folder.iterdir()) == [STATE_FILE]
