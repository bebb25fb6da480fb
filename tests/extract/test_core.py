"""The run logic of the extract against an in-memory stand-in for the hook (the simulator tests cover HTTP)."""

from __future__ import annotations

import gzip
import json

import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_codat.datatypes import get_data_type
from airflow_provider_codat.extract import core
from airflow_provider_codat.extract.core import (
    CodatDataNotSyncedError,
    CodatExtractError,
    ExtractRequest,
    run_extract,
)
from airflow_provider_codat.extract.watermark import instant_key

COMPANY = "8a210b68-6988-11ed-a1eb-0242ac120002"


def stamp(second: int, tick: int = 0) -> str:
    return f"2026-01-01T00:00:{second:02d}.{tick:07d}Z"


class FakeHook:
    """Serves one company-scoped type like Codat: ``modifiedDate>=``, ``isDeleted!=true``, offset pages."""

    def __init__(self, records: list[dict]) -> None:
        self.records = records
        self.sync_id = "sync-1"
        self.queries: list[str | None] = []
        self.after_page: dict[int, callable] = {}

    def get_data_status(self, company_id):
        return {"invoices": {"dataType": "invoices", "latestSuccessfulSyncId": self.sync_id}}

    def iter_pages(self, company_id, data_type, *, query, order_by, page_size, connection_id, account_id):
        self.queries.append(query)
        page = 0
        while True:
            rows = self._view(query)
            chunk = rows[page * page_size : (page + 1) * page_size]
            if not chunk:
                return
            yield [json.loads(json.dumps(r)) for r in chunk]
            page += 1
            if page in self.after_page:
                self.after_page.pop(page)()

    def _view(self, query):
        rows = list(self.records)
        for cond in (query or "").split("&&"):
            if cond.startswith("modifiedDate>="):
                low = instant_key(cond.split(">=", 1)[1])
                rows = [r for r in rows if instant_key(r["modifiedDate"]) >= low]
            elif cond == "metadata.isDeleted!=true":
                rows = [r for r in rows if not r["metadata"]["isDeleted"]]
        return sorted(rows, key=lambda r: instant_key(r["modifiedDate"]))

    def change(self, ident: str, when: str, deleted: bool = False) -> None:
        self.records = [r for r in self.records if r["id"] != ident]
        self.records.append(record(ident, when, deleted))
        self.sync_id = f"sync-{when}"


def record(ident: str, when: str, deleted: bool = False) -> dict:
    return {"id": ident, "modifiedDate": when, "metadata": {"isDeleted": deleted}}


def request(tmp_path, run_id: str, **kw) -> ExtractRequest:
    folder = ObjectStoragePath(f"file://{tmp_path}/out/{COMPANY}/invoices")
    kw.setdefault("page_size", 2)
    return ExtractRequest(COMPANY, get_data_type("invoices"), folder, run_id, f"run={run_id}", **kw)


def written(tmp_path) -> list[tuple[str, str]]:
    """Every (id, modifiedDate) in every run folder, duplicates kept."""
    pairs = []
    for path in sorted((tmp_path / "out" / COMPANY / "invoices").glob("run=*/part-*.jsonl.gz")):
        with gzip.open(path, "rt") as handle:
            pairs.extend((r["id"], r["modifiedDate"]) for r in map(json.loads, handle))
    return pairs


def truth(hook: FakeHook, history: set) -> set:
    return history | {(r["id"], r["modifiedDate"]) for r in hook.records}


def test_runs_write_each_version_once_including_the_watermark_instant(tmp_path):
    hook = FakeHook([record(f"i{n}", stamp(1 + n // 2)) for n in range(5)])
    history = truth(hook, set())
    first = run_extract(hook, request(tmp_path, "r1"))
    assert first["records"] == 5 and first["watermark_from"] is None and first["watermark_to"] == stamp(3)
    # A version created at the watermark instant after the read, and a newer one.
    hook.records.append(record("late", stamp(3)))
    hook.change("i0", stamp(4))
    history = truth(hook, history)
    second = run_extract(hook, request(tmp_path, "r2"))
    assert hook.queries[-1] == f"modifiedDate>={stamp(3)}"
    assert second["records"] == 2 and second["watermark_from"] == stamp(3)
    assert sorted(written(tmp_path)) == sorted(history)
    # Nothing new: nothing written, the watermark holds.
    third = run_extract(hook, request(tmp_path, "r3"))
    assert third["records"] == 0 and third["files"] == [] and third["watermark_to"] == stamp(4)
    assert sorted(written(tmp_path)) == sorted(history)


def test_kill_before_commit_then_retry_writes_exactly_once(tmp_path, monkeypatch):
    hook = FakeHook([record(f"i{n}", stamp(n)) for n in range(6)])
    run_extract(hook, request(tmp_path, "r1"))
    for n in range(6, 12):
        hook.records.append(record(f"i{n}", stamp(n)))

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("task killed")

    monkeypatch.setattr(core, "save_state", killed)
    with pytest.raises(KeyboardInterrupt):
        run_extract(hook, request(tmp_path, "r2", max_file_records=1))
    assert len(list((tmp_path / "out" / COMPANY / "invoices" / "run=r2").iterdir())) >= 3
    monkeypatch.undo()
    run_extract(hook, request(tmp_path, "r2"))
    pairs = written(tmp_path)
    assert len(pairs) == len(set(pairs)) and set(pairs) == truth(hook, set())


def test_retry_after_commit_rewrites_the_same_output(tmp_path):
    hook = FakeHook([record(f"i{n}", stamp(n)) for n in range(4)])
    run_extract(hook, request(tmp_path, "r1"))
    hook.change("i1", stamp(9))
    second = run_extract(hook, request(tmp_path, "r2"))
    again = run_extract(hook, request(tmp_path, "r2"))
    assert again == second
    pairs = written(tmp_path)
    assert len(pairs) == len(set(pairs)) == 5
    # A retry of the older run changes nothing now that r2 is on top of it.
    before = written(tmp_path)
    assert run_extract(hook, request(tmp_path, "r1"))["records"] == 4
    assert written(tmp_path) == before


def test_a_sync_completing_during_the_read_repeats_the_pass(tmp_path):
    hook = FakeHook([record(f"i{n}", stamp(n)) for n in range(6)])
    # After page 1, i0 (already served) moves to the end: offsets shift and i2 would be missed.
    hook.after_page[1] = lambda: hook.change("i0", stamp(30))
    summary = run_extract(hook, request(tmp_path, "r1"))
    assert len(hook.queries) == 2
    assert set(written(tmp_path)) == {(r["id"], r["modifiedDate"]) for r in hook.records}
    assert summary["records"] == 6


def test_syncs_that_never_stop_fail_without_commit(tmp_path):
    hook = FakeHook([record(f"i{n}", stamp(n)) for n in range(6)])
    original = hook.iter_pages

    def moving(*args, **kwargs):
        hook.sync_id += "+"
        yield from original(*args, **kwargs)

    hook.iter_pages = moving
    with pytest.raises(CodatExtractError, match="during each of 2 reads"):
        run_extract(hook, request(tmp_path, "r1", max_passes=2))
    folder = tmp_path / "out" / COMPANY / "invoices"
    assert not (folder / "_state.json").exists() and not (folder / "run=r1").exists()


def test_full_refresh_reads_everything_and_resets(tmp_path):
    hook = FakeHook([record(f"i{n}", stamp(n)) for n in range(3)])
    run_extract(hook, request(tmp_path, "r1"))
    summary = run_extract(hook, request(tmp_path, "r2", full_refresh=True))
    assert hook.queries[-1] is None and summary["records"] == 3
    hook.records.append(record("new", stamp(20)))
    assert run_extract(hook, request(tmp_path, "r3"))["records"] == 1


def test_exclude_deleted_goes_into_the_query(tmp_path):
    hook = FakeHook([record("a", stamp(1)), record("b", stamp(2), deleted=True)])
    summary = run_extract(hook, request(tmp_path, "r1", include_deleted=False))
    assert hook.queries == ["metadata.isDeleted!=true"] and summary["records"] == 1
    hook = FakeHook([record("a", stamp(1)), record("b", stamp(2), deleted=True)])
    assert run_extract(hook, request(tmp_path / "x", "r1"))["deleted"] == 1


def test_never_synced_is_an_error_that_says_what_to_do(tmp_path):
    hook = FakeHook([])
    hook.get_data_status = lambda company_id: {"invoices": {"dataType": "invoices"}}
    with pytest.raises(CodatDataNotSyncedError, match="Queue a refresh first"):
        run_extract(hook, request(tmp_path, "r1"))
    assert not (tmp_path / "out").exists()


def test_a_concurrent_commit_is_detected_and_nothing_doubles(tmp_path):
    hook = FakeHook([record(f"i{n}", stamp(n)) for n in range(4)])
    original = hook.iter_pages

    def racing(*args, **kwargs):
        # Another run of the same company and type commits while this one reads.
        hook.iter_pages = original
        run_extract(hook, request(tmp_path, "other"))
        yield from original(*args, **kwargs)

    hook.iter_pages = racing
    with pytest.raises(CodatExtractError, match="Another extract"):
        run_extract(hook, request(tmp_path, "mine"))
    assert not (tmp_path / "out" / COMPANY / "invoices" / "run=mine").exists()
    assert run_extract(hook, request(tmp_path, "mine"))["records"] == 0
    pairs = written(tmp_path)
    assert len(pairs) == len(set(pairs)) == 4


def test_gc_thresholds_are_raised_during_the_read_and_restored_after():
    import gc

    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        with core._fewer_gc_passes(50_000):
            assert gc.get_threshold() == (50_000, 10, 10)
            assert gc.isenabled()
        assert gc.get_threshold() == (700, 10, 10)
        with pytest.raises(RuntimeError), core._fewer_gc_passes(50_000):
            raise RuntimeError("a failed read restores them too")
        assert gc.get_threshold() == (700, 10, 10)
    finally:
        gc.set_threshold(*before)


@pytest.mark.parametrize(
    ("entry", "phrase"),
    [
        ({"dataType": "invoices"}, "never been synced"),
        ({"dataType": "invoices", "currentStatus": "Fetching"}, "first sync is still running"),
        ({"dataType": "invoices", "currentStatus": "AuthError"}, "ended in 'AuthError'"),
    ],
)
def test_not_synced_messages_say_why(entry, phrase):
    with pytest.raises(CodatDataNotSyncedError, match=phrase):
        core.check_synced(entry, COMPANY, "invoices")


def test_not_supported_is_an_empty_result_without_commit(tmp_path):
    hook = FakeHook([record("a", stamp(1))])
    hook.get_data_status = lambda company_id: {"invoices": {"currentStatus": "NotSupported"}}
    summary = run_extract(hook, request(tmp_path, "r1"))
    assert summary["records"] == 0 and hook.queries == []
    assert not (tmp_path / "out" / COMPANY / "invoices" / "_state.json").exists()
