"""The run logic of the extract against an in-memory stand-in for the hook (the simulator tests cover HTTP)."""

from __future__ import annotations

import gzip
import json
import logging
import random

import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_codat.datatypes import DataType, get_data_type
from airflow_provider_codat.errors import CodatDataNotSyncedError, CodatExtractError
from airflow_provider_codat.extract import keyset, pass_reader
from airflow_provider_codat.extract import run as extract_run
from airflow_provider_codat.extract.concurrent_types import extract_types
from airflow_provider_codat.extract.run import (
    ExtractRequest,
    run_extract,
)
from airflow_provider_codat.extract.synced import check_synced
from airflow_provider_codat.hooks.paging import check_envelope
from airflow_provider_codat.landing.records import instant_key
from airflow_provider_codat.values import CompanyId, ConnectionId

COMPANY = "8a210b68-6988-11ed-a1eb-0242ac120002"
CONNECTION = "9b210b68-6988-11ed-a1eb-0242ac120002"


def stamp(second: int, tick: int = 0) -> str:
    return f"2026-01-01T00:00:{second:02d}.{tick:07d}Z"


class FakeHook:
    """Serves one company-scoped type like Codat: ``modifiedDate`` conditions (``>=``, ``>``, ``=``),
    ``isDeleted!=true``, offset pages with Codat's envelope, and hooks to change the records between requests.

    :param shuffle_ties: serve records sharing a ``modifiedDate`` in a different order at every request, as
        Codat may (it documents no tiebreak).
    """

    def __init__(self, records: list[dict], *, shuffle_ties: bool = False) -> None:
        self.records = records
        self.sync_id = "sync-1"
        self.queries: list[str | None] = []
        self.data_types: list = []  # what the reads were given as the data type
        self.requests = 0
        self.after_request: dict[int, callable] = {}
        self.shuffle_ties = shuffle_ties
        self._rng = random.Random(7)

    def get_data_status(self, company_id):
        return {
            key: {"dataType": key, "latestSuccessfulSyncId": self.sync_id}
            for key in ("invoices", "commerce-products")
        }

    def get_page(
        self, company_id, data_type, *, query, order_by, page=1, page_size, connection_id, account_id
    ):
        self.queries.append(query)
        self.data_types.append(data_type)
        rows = self._view(query)
        chunk = rows[(page - 1) * page_size : page * page_size]
        body = {
            "results": [json.loads(json.dumps(r)) for r in chunk],
            "pageNumber": page,
            "pageSize": page_size,
            "totalResults": len(rows),
        }
        self.requests += 1
        if self.requests in self.after_request:
            self.after_request.pop(self.requests)()
        return check_envelope(body, page, page_size, "/fake")

    def iter_pages(self, company_id, data_type, *, order_by=None, **where):
        """Every page of one query; ``where`` holds ``get_page``'s other arguments."""
        page = 1
        while True:
            current = self.get_page(company_id, data_type, order_by=order_by, page=page, **where)
            if current:
                yield current
            if not current.has_next:
                return
            page += 1

    def _view(self, query):
        rows = list(self.records)
        for cond in (query or "").split("&&"):
            for op in (">=", ">", "="):
                if cond.startswith("modifiedDate" + op):
                    mark = instant_key(cond[len("modifiedDate" + op) :])
                    test = {">=": mark.__le__, ">": mark.__lt__, "=": mark.__eq__}[op]
                    rows = [r for r in rows if test(instant_key(r["modifiedDate"]))]
                    break
            if cond == "metadata.isDeleted!=true":
                rows = [r for r in rows if not r["metadata"]["isDeleted"]]
        if self.shuffle_ties:
            self._rng.shuffle(rows)
        return sorted(rows, key=lambda r: instant_key(r["modifiedDate"]))

    def change(self, ident: str, when: str, deleted: bool = False) -> None:
        self.records = [r for r in self.records if r["id"] != ident]
        self.records.append(record(ident, when, deleted))
        self.sync_id = f"sync-{when}"

    def restamp(self, ident: str, when: str) -> None:
        """Codat re-stamps a record's cache entry without any sync: dataStatus does not move."""
        sync_id = self.sync_id
        self.change(ident, when)
        self.sync_id = sync_id


def record(ident: str, when: str, deleted: bool = False) -> dict:
    return {"id": ident, "modifiedDate": when, "metadata": {"isDeleted": deleted}}


def request(tmp_path, run_id: str, **kw) -> ExtractRequest:
    folder = ObjectStoragePath(f"file://{tmp_path}/out/{COMPANY}/invoices")
    kw.setdefault("page_size", 2)
    entry = get_data_type("invoices")
    return ExtractRequest(CompanyId.parse(COMPANY), entry, folder, run_id, f"run={run_id}", **kw)


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
    asked = len(hook.queries)
    second = run_extract(hook, request(tmp_path, "r2"))
    assert hook.queries[asked] == f"modifiedDate>={stamp(3)}"
    assert second["records"] == 2 and second["watermark_from"] == stamp(3)
    assert sorted(written(tmp_path)) == sorted(history)
    # Nothing new: nothing written, the watermark holds.
    third = run_extract(hook, request(tmp_path, "r3"))
    assert third["records"] == 0 and third["files"] == [] and third["watermark_to"] == stamp(4)
    assert sorted(written(tmp_path)) == sorted(history)


def visible(tmp_path, run: str) -> list[str]:
    """What a reader globbing for data finds in a run folder."""
    return sorted(p.name for p in (tmp_path / "out" / COMPANY / "invoices" / run).glob("*.jsonl.gz"))


def test_kill_before_commit_leaves_nothing_a_reader_takes_for_data(tmp_path, monkeypatch):
    hook = FakeHook([record(f"i{n}", stamp(n)) for n in range(6)])
    run_extract(hook, request(tmp_path, "r1"))
    for n in range(6, 12):
        hook.records.append(record(f"i{n}", stamp(n)))

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("task killed")

    monkeypatch.setattr(extract_run, "save_state", killed)
    with pytest.raises(KeyboardInterrupt):
        run_extract(hook, request(tmp_path, "r2", max_file_records=1))
    monkeypatch.undo()
    # The killed try's files, abandoned: none of them matches the layout a reader globs.
    assert visible(tmp_path, "run=r2") == []
    assert sorted(written(tmp_path)) == sorted((f"i{n}", stamp(n)) for n in range(6))
    run_extract(hook, request(tmp_path, "r2"))
    pairs = written(tmp_path)
    assert len(pairs) == len(set(pairs)) and set(pairs) == truth(hook, set())
    assert not [
        p for p in (tmp_path / "out" / COMPANY / "invoices" / "run=r2").iterdir() if p.suffix == ".tmp"
    ]


def test_kill_between_commit_and_publication_is_finished_by_the_next_load(tmp_path, monkeypatch):
    hook = FakeHook([record(f"i{n}", stamp(n)) for n in range(4)])
    monkeypatch.setattr(extract_run, "publish", lambda folder, state: state)  # killed right after the commit
    run_extract(hook, request(tmp_path, "r1"))
    monkeypatch.undo()
    assert visible(tmp_path, "run=r1") == []
    again = run_extract(hook, request(tmp_path, "r1"))  # the retry publishes and returns the committed run
    assert again["records"] == 4 and visible(tmp_path, "run=r1") == ["part-00000.jsonl.gz"]
    assert sorted(written(tmp_path)) == sorted(truth(hook, set()))


def test_a_retry_after_the_commit_that_fails_then_succeeds_keeps_the_committed_data(tmp_path):
    hook = FakeHook([record(f"i{n}", stamp(n)) for n in range(4)])
    run_extract(hook, request(tmp_path, "r1"))
    hook.change("i1", stamp(9))
    committed = run_extract(hook, request(tmp_path, "r2"))
    before = written(tmp_path)

    def failing(*args, **kwargs):
        raise RuntimeError("Codat is down")

    hook.get_page = failing
    hook.get_data_status = failing
    # The retry does not read, so Codat being down does not matter, and nothing is removed.
    assert run_extract(hook, request(tmp_path, "r2")) == committed
    del hook.get_page, hook.get_data_status
    assert run_extract(hook, request(tmp_path, "r2")) == committed
    assert written(tmp_path) == before and len(before) == len(set(before)) == 5


def test_a_clear_of_a_run_committed_500_runs_ago_changes_nothing(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="airflow_provider_codat")
    hook = FakeHook([record(f"i{n}", stamp(n % 60, n)) for n in range(3)])
    first = run_extract(hook, request(tmp_path, "r0"))
    for n in range(1, 501):
        if n % 50 == 0:
            hook.records.append(record(f"n{n}", stamp(59, 1000 + n)))
        run_extract(hook, request(tmp_path, f"r{n}"))
    state = (tmp_path / "out" / COMPANY / "invoices" / "_state.json").read_text()
    assert len(state) < 2000  # no run history in the state
    before = written(tmp_path)
    assert run_extract(hook, request(tmp_path, "r0")) == first
    assert written(tmp_path) == before and len(before) == len(set(before)) == 13


def test_records_restamped_while_paging_without_a_sync_are_not_lost(tmp_path):
    hook = FakeHook([record(f"i{n}", stamp(n)) for n in range(10)])
    # After the first request, Codat re-stamps i0 and i1 (already read) with no sync: with offset paging every
    # record behind them moves two places up, and i2, i3 would never be read by any run.
    hook.after_request[1] = lambda: (hook.restamp("i0", stamp(40)), hook.restamp("i1", stamp(41)))
    run_extract(hook, request(tmp_path, "r1", page_size=2))
    pairs = written(tmp_path)
    assert len(pairs) == len(set(pairs))
    assert set(pairs) == {(f"i{n}", stamp(n)) for n in range(10)} | {("i0", stamp(40)), ("i1", stamp(41))}


def test_equal_dates_in_an_unstable_order_are_neither_lost_nor_doubled(tmp_path, monkeypatch):
    # The instant is read in pages smaller than itself, so each pass can repeat some records and skip others.
    monkeypatch.setattr(keyset, "INSTANT_PAGE_SIZE", 10)
    records = [record(f"i{n:02d}", stamp(5)) for n in range(25)] + [record("z", stamp(6))]
    hook = FakeHook(records, shuffle_ties=True)
    run_extract(hook, request(tmp_path, "r1", page_size=4))
    pairs = written(tmp_path)
    assert len(pairs) == len(set(pairs)) and set(pairs) == truth(hook, set())
    hook.records.append(record("late", stamp(6)))
    run_extract(hook, request(tmp_path, "r2", page_size=4))
    pairs = written(tmp_path)
    assert len(pairs) == len(set(pairs)) and set(pairs) == truth(hook, set())


def test_many_versions_at_the_watermark_keep_the_state_small(tmp_path):
    hook = FakeHook([record(f"i{n:05d}", stamp(7)) for n in range(5000)])
    run_extract(hook, request(tmp_path, "r1", page_size=1000))
    folder = tmp_path / "out" / COMPANY / "invoices"
    assert (folder / "_state.json").stat().st_size < 2000
    hook.records.append(record("new", stamp(7)))
    second = run_extract(hook, request(tmp_path, "r2", page_size=1000))
    assert second["records"] == 1
    pairs = written(tmp_path)
    assert len(pairs) == len(set(pairs)) == 5001
    # One side file of ids, the current one.
    assert len(list(folder.glob("_watermark_ids/*"))) == 1


def test_a_modified_date_that_is_not_a_date_fails_naming_the_record(tmp_path):
    hook = FakeHook([record("a", stamp(1))])
    hook.records.append(
        {"id": "bad-one", "modifiedDate": "2026-02-30T00:00:00Z", "metadata": {"isDeleted": False}}
    )
    hook._view = lambda query: list(hook.records)
    with pytest.raises(CodatExtractError, match="bad-one"):
        run_extract(hook, request(tmp_path, "r1"))
    assert not (tmp_path / "out" / COMPANY / "invoices" / "_state.json").exists()


def full_request(tmp_path, run_id: str, **kw) -> ExtractRequest:
    folder = ObjectStoragePath(f"file://{tmp_path}/out/{COMPANY}/commerce-products")
    kw.setdefault("page_size", 2)
    connection = ConnectionId.parse(CONNECTION)
    entry = get_data_type("commerce-products")
    company = CompanyId.parse(COMPANY)
    return ExtractRequest(company, entry, folder, run_id, f"run={run_id}", connection_id=connection, **kw)


def test_syncs_that_never_stop_fail_a_full_type_without_commit(tmp_path):
    hook = FakeHook([{"id": f"p{n}"} for n in range(6)])
    hook._view = lambda query: list(hook.records)
    original = hook.iter_pages

    def moving(*args, **kwargs):
        hook.sync_id += "+"
        yield from original(*args, **kwargs)

    hook.iter_pages = moving
    with pytest.raises(CodatExtractError, match="during each of 2 reads"):
        run_extract(hook, full_request(tmp_path, "r1", max_passes=2))
    folder = tmp_path / "out" / COMPANY / "commerce-products"
    assert not (folder / "_state.json").exists()
    assert not list(folder.glob("run=r1/*.jsonl.gz"))


def test_full_refresh_reads_everything_and_resets(tmp_path):
    hook = FakeHook([record(f"i{n}", stamp(n)) for n in range(3)])
    run_extract(hook, request(tmp_path, "r1"))
    asked = len(hook.queries)
    summary = run_extract(hook, request(tmp_path, "r2", full_refresh=True))
    assert hook.queries[asked] is None and summary["records"] == 3
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
    original = hook.get_page

    def racing(*args, **kwargs):
        # Another run of the same company and type commits while this one reads.
        hook.get_page = original
        run_extract(hook, request(tmp_path, "other"))
        return original(*args, **kwargs)

    hook.get_page = racing
    with pytest.raises(CodatExtractError, match="Another extract"):
        run_extract(hook, request(tmp_path, "mine"))
    assert visible(tmp_path, "run=mine") == []
    assert run_extract(hook, request(tmp_path, "mine"))["records"] == 0
    pairs = written(tmp_path)
    assert len(pairs) == len(set(pairs)) == 4


def test_gc_thresholds_are_raised_during_the_read_and_restored_after():
    import gc

    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        with pass_reader._fewer_gc_passes(50_000):
            assert gc.get_threshold() == (50_000, 10, 10)
            assert gc.isenabled()
        assert gc.get_threshold() == (700, 10, 10)
        with pytest.raises(RuntimeError), pass_reader._fewer_gc_passes(50_000):
            raise RuntimeError("a failed read restores them too")
        assert gc.get_threshold() == (700, 10, 10)
        # Reads on several threads overlap: the thresholds come back when the last one ends, whatever the order.
        first, second = pass_reader._fewer_gc_passes(50_000), pass_reader._fewer_gc_passes(50_000)
        first.__enter__()
        second.__enter__()
        first.__exit__(None, None, None)
        assert gc.get_threshold() == (50_000, 10, 10)
        second.__exit__(None, None, None)
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
        check_synced(entry, COMPANY, "invoices")


def test_not_supported_is_an_empty_result_without_commit(tmp_path):
    hook = FakeHook([record("a", stamp(1))])
    hook.get_data_status = lambda company_id: {"invoices": {"currentStatus": "NotSupported"}}
    summary = run_extract(hook, request(tmp_path, "r1"))
    assert summary["records"] == 0 and hook.queries == []
    assert not (tmp_path / "out" / COMPANY / "invoices" / "_state.json").exists()


def test_a_full_type_read_in_a_shifting_order_is_read_until_whole(tmp_path):
    hook = FakeHook([{"id": f"p{n:02d}"} for n in range(12)])
    rng = random.Random(3)

    def shuffled(query):
        rows = list(hook.records)
        rng.shuffle(rows)
        return rows

    hook._view = shuffled
    summary = run_extract(hook, full_request(tmp_path, "r1", page_size=4))
    folder = tmp_path / "out" / COMPANY / "commerce-products"
    ids = []
    for path in folder.glob("run=r1/part-*.jsonl.gz"):
        with gzip.open(path, "rt") as handle:
            ids.extend(json.loads(line)["id"] for line in handle)
    assert sorted(ids) == [f"p{n:02d}" for n in range(12)] and summary["records"] == 12


def test_checked_values_in_plain_strings_out(tmp_path):
    """The request carries a CompanyId, a ConnectionId and the catalogue entry; the records' ``_codat``, the
    summary and the state hold plain ``str`` (msgspec, the part writer's and Airflow's, refuses subclasses)."""
    company_id, connection_id = CompanyId.parse(COMPANY), ConnectionId.parse(CONNECTION)
    hook = FakeHook([record("a", stamp(1)), record("b", stamp(2))])
    for key, connection in (("invoices", None), ("commerce-products", connection_id)):
        entry = get_data_type(key)
        req = ExtractRequest.for_run(
            company_id=company_id,
            data_type=entry,
            destination=f"file://{tmp_path}/out",
            run_id="r1",
            connection_id=connection,
            page_size=2,
        )
        assert req.company_id is company_id and req.data_type is entry and req.connection_id is connection
        summary = run_extract(hook, req)
        assert summary["records"] == 2
        assert type(summary["company_id"]) is str and summary["company_id"] == COMPANY
        assert all(type(value) is str for value in summary["files"])
        folder = tmp_path / "out" / COMPANY / key
        state = json.loads((folder / "_state.json").read_text())
        assert state["company_id"] == COMPANY and type(state["last_run"]["summary"]["company_id"]) is str
        for path in folder.glob("run=r1/part-*.jsonl.gz"):
            with gzip.open(path, "rt") as handle:
                for meta in (json.loads(line)["_codat"] for line in handle):
                    assert meta["companyId"] == COMPANY and meta["dataType"] == key
                    assert meta.get("connectionId") == connection
    assert hook.data_types and all(isinstance(data_type, DataType) for data_type in hook.data_types)


def test_extract_types_shares_data_status_and_returns_plain_results(tmp_path):
    hook = FakeHook([record("a", stamp(1)), record("b", stamp(2))])
    hook.client = None  # extract_types resolves the connection before the threads start
    reads = []
    original = hook.get_data_status
    hook.get_data_status = lambda company_id: reads.append(company_id) or original(company_id)
    company_id = CompanyId.parse(COMPANY)
    requests = [
        ExtractRequest.for_run(
            company_id=company_id,
            data_type=get_data_type(key),
            destination=f"file://{tmp_path}/out",
            run_id="r1",
            connection_id=connection,
            page_size=2,
        )
        for key, connection in (("invoices", None), ("commerce-products", ConnectionId.parse(CONNECTION)))
    ]
    results = extract_types(hook, requests, max_concurrency=2)
    assert {key: result["status"] for key, result in results.items()} == {
        "invoices": "extracted",
        "commerce-products": "extracted",
    }
    assert all(type(result["company_id"]) is str for result in results.values())
    # One read before both types, one after the full type's pass (the keyset read needs none after).
    assert reads == [company_id, company_id]
