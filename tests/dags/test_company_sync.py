"""CodatCompanySyncOperator over real HTTP to the simulator: refresh, wait, concurrent extract, failures, retries.

Simulated time (``sim_clock``) makes Codat's syncs finish in milliseconds; everything else is real: the HTTP
server, the hook, the trigger, the files written.
"""

from __future__ import annotations

import asyncio
import importlib.util
import re
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from airflow_provider_codat.datatypes import Kind, get_data_type
from airflow_provider_codat.errors import CodatValidationError
from airflow_provider_codat.operators.company import (
    STATE_XCOM_KEY,
    CodatCompanySyncFailedError,
    CodatCompanySyncOperator,
)
from airflow_provider_codat.version_compat import TaskDeferred
from tests.extract.conftest import read_records, truth, versions
from tests.sync.conftest import FakeTI, requests

pytestmark = pytest.mark.codat_simulator(companies=3, records=20, sync_seconds=30)


def _daily_types() -> list[str]:
    """The data types of the example ``codat_sync_daily`` DAG, from its table."""
    spec = importlib.util.spec_from_file_location("codat_sync_table", ROOT / "dags" / "codat_sync.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(next(row for row in module.SYNC_TABLE if row.dag_id == "codat_sync_daily").data_types)


ROOT = Path(__file__).resolve().parents[2]
DAILY = _daily_types()


class RetryTI(FakeTI):
    def __init__(self, try_number: int = 1) -> None:
        super().__init__()
        self.try_number = try_number
        self.map_index = -1

    def xcom_pull(self, task_ids, key, map_indexes):
        return self.xcoms.get(key)


class DagRun:
    def __init__(self, start_date: datetime) -> None:
        self.start_date = start_date


def make_context(run_id: str = "manual__run1", try_number: int = 1, start_date: datetime | None = None):
    return {
        "ti": RetryTI(try_number),
        "run_id": run_id,
        "dag_run": DagRun(start_date or datetime.now(UTC)),
    }


def operator(company, tmp_path: Path, types=DAILY, **kw) -> CodatCompanySyncOperator:
    kw.setdefault("deferrable", False)
    return CodatCompanySyncOperator(
        task_id="sync", company_id=company, data_types=types, destination=str(tmp_path), **kw
    )


def assert_landed(sim, tmp_path: Path, company: str, data_type: str) -> None:
    records = read_records(tmp_path / company / data_type)
    if get_data_type(data_type).kind is Kind.SNAPSHOT:
        assert len(records) == 1
    else:
        assert set(versions(records)) == truth(sim.control, company, data_type), data_type


def api_calls(sim) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for r in sim.control.request_log():
        path = r["path"]
        kind = (
            "dataStatus"
            if path.endswith("/dataStatus")
            else "queue"
            if "/data/queue/" in path
            else "history"
            if "/data/history" in path
            else "read"
        )
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def test_one_company_every_type_in_one_task_with_one_status_read_each_side(
    sim, sim_clock, company_id, tmp_path
):
    sim.control.reset_request_log()
    # Syncs take 30 s: one look at once, one 30 s later, as the deferred wait of the example DAGs does.
    result = operator(company_id, tmp_path, poll_interval=30).execute(make_context())

    assert set(result) == set(DAILY)
    assert {outcome["status"] for outcome in result.values()} == {"extracted"}
    for data_type in DAILY:
        assert_landed(sim, tmp_path, company_id, data_type)
    log = sim.control.request_log()
    first_read = next(i for i, r in enumerate(log) if r["method"] == "GET" and "/data/" in r["path"])
    # Before the reads the wait's last look serves; after them none: keyset reads lose nothing to a sync that
    # completes meanwhile, so only full types (none here) look again.
    assert [r["path"] for r in log[first_read:] if r["path"].endswith("/dataStatus")] == []
    assert len([r for r in log if r["path"].endswith("/connections")]) == 1  # shared by two types
    calls = api_calls(sim)
    assert calls["queue"] == len(DAILY) and calls["dataStatus"] == 2, calls
    assert sum(calls.values()) <= 25, calls


def test_a_failed_sync_fails_the_task_naming_it_and_the_others_commit(sim, sim_clock, company_id, tmp_path):
    sim.control.fail_next_sync(company_id, "payments", status="FetchError", error_message="Xero said no")
    context = make_context()
    with pytest.raises(CodatCompanySyncFailedError, match=r"payments: sync FetchError: Xero said no"):
        operator(company_id, tmp_path, types=["invoices", "payments", "bills"]).execute(context)
    outcomes = context["ti"].xcoms["codat_outcomes"]
    assert outcomes["payments"]["status"] == "failed"
    for data_type in ("invoices", "bills"):
        assert outcomes[data_type]["status"] == "extracted"
        assert (tmp_path / company_id / data_type / "_state.json").exists()
        assert_landed(sim, tmp_path, company_id, data_type)
    assert not (tmp_path / company_id / "payments" / "_state.json").exists()


def test_an_extract_failure_touches_no_other_type_and_the_retry_is_cheap(
    sim, sim_clock, company_id, tmp_path
):
    types = ["invoices", "payments", "bills"]
    started = datetime.now(UTC)
    sim.control.add_fault("server_error", path=r"/data/payments$", status=500, times=None)
    with pytest.raises(CodatCompanySyncFailedError, match=r"payments: CodatAPIError: .*500") as failure:
        operator(company_id, tmp_path, types=types).execute(make_context(start_date=started))
    assert "invoices" not in str(failure.value) and "bills" not in str(failure.value)
    committed = {t: (tmp_path / company_id / t / "_state.json").read_text() for t in ("invoices", "bills")}

    sim.control.clear_faults()
    sim.control.reset_request_log()
    result = operator(company_id, tmp_path, types=types).execute(
        make_context(try_number=2, start_date=started)
    )

    assert {t: o["status"] for t, o in result.items()} == dict.fromkeys(types, "extracted")
    # Every type synced since the run started: nothing queued again, and the committed types are not read.
    assert requests(sim, "POST", "/data/queue/") == []
    assert [r["path"] for r in requests(sim, "GET") if re.search(r"/data/(invoices|bills)$", r["path"])] == []
    assert len(requests(sim, "GET", "/data/payments")) == 1
    for data_type, state in committed.items():
        assert (tmp_path / company_id / data_type / "_state.json").read_text() == state
    assert_landed(sim, tmp_path, company_id, "payments")


def test_a_retry_queues_again_what_did_not_sync_since_the_run_started(sim, sim_clock, company_id, tmp_path):
    started = datetime.now(UTC)
    sim.control.fail_next_sync(company_id, "payments")
    with pytest.raises(CodatCompanySyncFailedError):
        operator(company_id, tmp_path, types=["invoices", "payments"]).execute(
            make_context(start_date=started)
        )
    sim.control.reset_request_log()
    operator(company_id, tmp_path, types=["invoices", "payments"]).execute(
        make_context(try_number=2, start_date=started)
    )
    assert [r["path"].rsplit("/", 1)[1] for r in requests(sim, "POST", "/data/queue/")] == ["payments"]


def test_deferrable_frees_the_worker_and_resumes_from_the_trigger_event(sim, sim_clock, company_id, tmp_path):
    context = make_context()
    op = operator(company_id, tmp_path, types=["invoices", "payments"], deferrable=True, poll_interval=5)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)
    trigger = deferred.value.trigger
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_codat.triggers.sync.CodatSyncTrigger"
    assert set(kwargs["datasets"]) == {"invoices", "payments"}
    assert "password" not in repr(kwargs) and sim.api_key not in repr(kwargs)
    # What Airflow stores goes through msgspec, which refuses the checked id types: all plain.
    msgspec.json.encode([kwargs, deferred.value.kwargs, context["ti"].xcoms])

    async def first_event():
        async for event in trigger.run():
            return event.payload

    event = asyncio.run(first_event())
    assert event["status"] == "success"
    # The runner kept only the event (as `airflow dags test` does): the progress comes back from XCom.
    assert STATE_XCOM_KEY in context["ti"].xcoms
    result = op.execute_complete(context, event=event)
    assert {t: o["status"] for t, o in result.items()} == {"invoices": "extracted", "payments": "extracted"}
    msgspec.json.encode(result)
    assert_landed(sim, tmp_path, company_id, "invoices")


def test_a_batch_of_companies_in_one_task_and_the_asset_events_name_them(sim, sim_clock, tmp_path):
    from airflow.sdk import Asset
    from airflow.sdk.execution_time.context import OutletEventAccessors

    companies = sim.control.linked_company_ids()
    invoices, payments = Asset("codat://invoices"), Asset("codat://payments")
    context = {**make_context(), "outlet_events": OutletEventAccessors()}
    op = operator(companies, tmp_path, types=["invoices", "bankTransactions"], outlets=[invoices, payments])
    result = op.execute(context)
    extra = context["outlet_events"][invoices].extra
    assert extra["company_ids"] == sorted(companies) and extra["source"] == "extract"
    assert extra["records"] == sum(result[c]["invoices"]["records"] for c in companies) > 0
    assert context["outlet_events"][payments].extra == {}  # not a type of this task: nothing claimed
    assert set(result) == set(companies)
    for company in companies:
        assert {o["status"] for o in result[company].values()} == {"extracted"}
        assert_landed(sim, tmp_path, company, "invoices")
        assert_landed(sim, tmp_path, company, "bankTransactions")


def test_a_company_whose_refresh_fails_fails_alone_in_its_batch(sim, sim_clock, tmp_path):
    linked = sim.control.linked_company_ids()
    [deauthorized] = sim.control.deauthorized_company_ids()
    with pytest.raises(CodatCompanySyncFailedError, match=re.escape(deauthorized)) as failure:
        operator([linked[0], deauthorized], tmp_path, types=["invoices"]).execute(make_context())
    assert linked[0] not in str(failure.value)
    assert_landed(sim, tmp_path, linked[0], "invoices")


def test_bad_input_fails_before_any_request(sim, tmp_path):
    sim.control.reset_request_log()
    with pytest.raises(ValueError, match="not-a-type"):
        operator(sim.control.linked_company_ids()[0], tmp_path, types=["not-a-type"]).execute(make_context())
    with pytest.raises(ValueError, match="company_id"):
        operator("../etc", tmp_path).execute(make_context())
    with pytest.raises(ValueError, match="destination must be a storage URI"):
        CodatCompanySyncOperator(
            task_id="sync",
            company_id=sim.control.linked_company_ids()[0],
            data_types=["invoices"],
            destination="ftp:/x",
        ).execute(make_context())
    with pytest.raises(ValueError, match="max_concurrency must be from 1 to 10"):
        operator("x", tmp_path, max_concurrency=20)
    with pytest.raises(ValueError, match="refresh must be one of"):
        operator("x", tmp_path, refresh="sometimes")
    assert sim.control.request_log() == []


def test_more_types_than_workers_share_reads_in_waves_without_waiting_forever(
    sim, sim_clock, company_id, tmp_path
):
    types = ["invoices", "creditNotes", "payments", "bills", "billPayments"]
    op = operator(company_id, tmp_path, types=types, refresh="none", max_concurrency=2)
    sim.control.reset_request_log()
    result = op.execute(make_context())
    assert {o["status"] for o in result.values()} == {"extracted"}
    status_reads = len(requests(sim, "GET", "/dataStatus"))
    # One before the reads, shared by every wave; none after (keyset reads of incremental types).
    assert status_reads == 1, status_reads


def test_the_wait_paces_itself_from_the_refresh_not_from_the_task_start(sim, sim_clock, company_id, tmp_path):
    # Time a task spends before its refresh (start-up, the destination's file system) must not bring the
    # trigger's first look forward: it would find the new sync still running and cost one more dataStatus call.
    from airflow_provider_codat.company_sync import CompanySync, CompanySyncOptions
    from airflow_provider_codat.hooks.codat import CodatHook
    from airflow_provider_codat.values import CompanyId

    options = CompanySyncOptions(
        refresh="queue",
        include_deleted=True,
        full_refresh=False,
        page_size=1000,
        max_concurrency=10,
        poll_interval=5,
        max_poll_interval=60,
    )
    sync = CompanySync.start(
        CodatHook(),
        [CompanyId.parse(company_id)],
        ["invoices"],
        tmp_path.as_uri(),
        run_id="manual__run1",
        timeout=3600,
        options=options,
    )
    task_started = sync.progress.started_at
    sim_clock.sleep(30)  # a slow start-up, on the simulated clock
    sync.refresh()
    wait = sync.advance(deferrable=True)
    assert wait is not None and wait.started_at >= task_started + 30
    assert wait.deadline == task_started + 3600  # the deadline still counts from the task's start


def test_tables_option_merges_the_batch_once_per_type_and_a_retry_merges_nothing(sim, sim_clock, tmp_path):
    from airflow.sdk import Asset
    from airflow.sdk.execution_time.context import OutletEventAccessors
    from deltalake import DeltaTable

    from tests.tables.conftest import assert_table_is_truth, table_rows
    from tests.tables.conftest import truth as table_truth

    companies = sim.control.linked_company_ids()
    table_asset = Asset("codat-table://invoices")
    context = {**make_context(), "outlet_events": OutletEventAccessors()}
    types = ["invoices", "bankTransactions"]
    operator(companies, tmp_path, types=types, tables=True, outlets=[table_asset]).execute(context)

    extra = context["outlet_events"][table_asset].extra
    assert extra["runs_merged"] == len(companies) and extra["inserted"] > 0 and extra["version"] == 1
    for data_type in types:
        table = tmp_path / "_tables" / data_type
        assert DeltaTable(str(table)).version() == 1  # created, then one merge for every company of the task
        assert_table_is_truth(table_rows(table), table_truth(sim.control, companies, data_type))
    retry = {**make_context(try_number=2), "outlet_events": OutletEventAccessors()}
    operator(companies, tmp_path, types=types, tables="true", outlets=[table_asset]).execute(retry)
    assert retry["outlet_events"][table_asset].extra["runs_merged"] == 0
    assert DeltaTable(str(tmp_path / "_tables" / "invoices")).version() == 1


def test_reconcile_tombstones_what_codat_dropped_in_the_landing_and_the_tables(
    sim, sim_clock, company_id, tmp_path
):
    from tests.tables.conftest import assert_table_is_truth, table_rows
    from tests.tables.conftest import truth as table_truth

    types = ["invoices", "bankTransactions", "banking-transactions"]
    with pytest.raises(CodatValidationError, match="invoices', which needs no reconcile"):
        operator(company_id, tmp_path, types=types, reconcile=["invoices"]).execute(make_context())
    sim.control.reset_request_log()
    first = operator(company_id, tmp_path, types=types, reconcile=True, tables=True)
    result = first.execute(make_context("manual__run1"))
    assert "reconcile" not in result["invoices"]
    for data_type in types[1:]:  # nothing dropped yet: read, and nothing to land
        assert result[data_type]["reconcile"]["status"] == "reconciled"
        assert result[data_type]["reconcile"]["tombstoned"] == 0
    # The second run's refresh drops a record of each flagless scope, as Codat does, with no flag.
    second = operator(company_id, tmp_path, types=types, reconcile=True, tables=True, poll_interval=30)
    sim.control.reset_request_log()
    result = second.execute(make_context("manual__run2"))
    assert api_calls(sim)["dataStatus"] == 2  # the reconciles take the wait's last look: no read of their own
    for data_type in types[1:]:
        assert result[data_type]["reconcile"]["tombstoned"] >= 1, result[data_type]
        table = table_rows(tmp_path / "_tables" / data_type)
        assert_table_is_truth(table, table_truth(sim.control, [company_id], data_type))


def _previous_release_progress(company: str, tmp_path: Path, **changes) -> dict:
    """The progress dict the previous release kept in a deferral's kwargs and XCom, written out by hand."""
    now = datetime.now(UTC).timestamp()
    progress = {
        "companies": [company],
        "types": ["invoices", "payments"],
        "destination": tmp_path.as_uri(),
        "run_id": "manual__run1",
        "options": {
            "refresh": "queue",
            "include_deleted": True,
            "full_refresh": False,
            "page_size": 100,
            "max_concurrency": 10,
            "poll_interval": 30,
            "max_poll_interval": 300,
            "reconcile": [],
        },
        "deadline": now + 3600,
        "started_at": now,
        "refresh_began": now,
        "index": 0,
        "syncs": {},
        "results": {},
    }
    return {**progress, **changes}


def test_the_previous_release_progress_reads_and_writes_back_the_same_json(company_id, tmp_path):
    from airflow_provider_codat.company_progress import CompanySyncProgress

    old = _previous_release_progress(
        company_id,
        tmp_path,
        paused_for_quota_in="advance",
        syncs={
            company_id: {"datasets": {"invoices": "d1"}, "outcomes": {"payments": {"status": "Complete"}}}
        },
    )
    progress = CompanySyncProgress.from_json(old)
    assert progress.paused_in == "advance" and progress.current == company_id
    assert progress.syncs[company_id].datasets == {"invoices": "d1"}
    assert progress.options.poll_interval == 30 and progress.options.reconcile == []
    assert progress.to_json() == old
    msgspec.json.encode(progress.to_json())  # what Airflow stores: plain JSON
    progress.paused_in = None
    assert "paused_for_quota_in" not in progress.to_json()
    with pytest.raises(CodatValidationError, match="cannot be resumed"):
        CompanySyncProgress.from_json({**old, "deadline": "soon"})
    with pytest.raises(CodatValidationError, match="refresh must be one of"):
        CompanySyncProgress.from_json({**old, "options": {**old["options"], "refresh": "sometimes"}})


def test_a_task_paused_by_the_previous_release_in_its_refresh_resumes_and_lands(
    sim, sim_clock, company_id, tmp_path
):
    state = _previous_release_progress(company_id, tmp_path, paused_for_quota_in="refresh")
    op = operator(company_id, tmp_path, types=["invoices", "payments"], poll_interval=30)

    result = op.execute_after_quota_reset(make_context(), event=None, state=state)

    assert {t: o["status"] for t, o in result.items()} == {"invoices": "extracted", "payments": "extracted"}
    for data_type in ("invoices", "payments"):
        assert_landed(sim, tmp_path, company_id, data_type)
    assert api_calls(sim)["queue"] == 2  # its refresh ran once, here


def test_a_task_deferred_by_the_previous_release_in_its_wait_resumes_from_xcom(
    sim, sim_clock, company_id, tmp_path
):
    synced = {"status": "Complete", "dataset_id": None}
    state = _previous_release_progress(
        company_id,
        tmp_path,
        syncs={company_id: {"datasets": {}, "outcomes": dict.fromkeys(["invoices"], synced)}},
    )
    state["types"] = ["invoices"]
    context = make_context()
    context["ti"].xcom_push(key=STATE_XCOM_KEY, value=state)  # the runner kept only the event
    sim.control.reset_request_log()
    op = operator(company_id, tmp_path, types=["invoices"], deferrable=True)

    result = op.execute_complete(context, event={"status": "success", "outcomes": {}})

    assert result["invoices"]["status"] == "extracted"
    assert_landed(sim, tmp_path, company_id, "invoices")
    assert "queue" not in api_calls(sim)  # nothing refreshed again
