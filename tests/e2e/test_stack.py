"""End to end on the production topology (`make stack`: Postgres, Redis, two Celery workers, a separate
triggerer): the daily DAG, triggered through the REST API, lands every record version exactly once, also
when a Celery worker and the triggerer are killed with SIGKILL in the middle of a run.

Opt-in: runs when CODAT_E2E=1 (CI sets it); then Debian's postgresql and redis-server must be installed (a
missing one fails the test, naming the install command). ``CODAT_STACK_COMPANIES`` sets the number of
simulator companies (default 40: one task instance per company in the daily DAG, more than the two workers' 16
slots, so a killed worker takes other companies' tasks with it; `bench/` measures the stack at scale).
"""

from __future__ import annotations

import inspect
import os
import shutil
import time
from collections import Counter

import httpx
import pytest
from local_airflow import read_run_files, simulator_versions  # tools/, on pytest's pythonpath
from stack import Stack

from airflow_provider_codat.simulator.control import SimulatorControl
from tests.e2e.stack_root import stack_root

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
DAG_ID = "codat_sync_daily"
COMPANIES = int(os.environ.get("CODAT_STACK_COMPANIES", "40"))
# Test-only settings over airflow.env: only the runs the test triggers; a dead worker's tasks failed (and
# retried) after 30 s of silence rather than 5 minutes, and the tasks it had reserved but not started sent
# again after 60 s in the queue rather than 10 minutes; a dead triggerer's triggers adopted after 15 s.
OVERRIDES = {
    "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "false",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
    "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "60",
    "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": "15",
    "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "15",
    "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "5",
}
# The simulator's per-minute limit here is three times Codat's, and the budget 0.9 of it: the runs take minutes,
# not a quarter of an hour, and the budget is held to all the same (docs/deploy.md).
CODAT_LIMIT_PER_MINUTE = 3000
BUDGET = {"requests_per_minute": 2700}
# 200 companies ran in about 3 minutes alone; a hang fails within CI's time.
RUN_TIMEOUT = 600 + 4 * COMPANIES


class HttpControl:
    """The simulator's control API over HTTP, with :class:`SimulatorControl`'s method signatures (the
    simulator runs in its own process here)."""

    def __init__(self, base_url: str) -> None:
        self._client = httpx.Client(base_url=f"{base_url}/_simulator", timeout=60)

    def __getattr__(self, operation: str):
        signature = inspect.signature(getattr(SimulatorControl, operation))

        def call(*args, **kwargs):
            bound = signature.bind(None, *args, **kwargs).arguments
            bound.pop("self")
            for name, parameter in signature.parameters.items():
                if parameter.kind is inspect.Parameter.VAR_KEYWORD:  # sent as the body's own fields
                    bound.update(bound.pop(name, {}))
            response = self._client.post(f"/{operation}", json=bound)
            response.raise_for_status()
            return response.json()["result"]

        return call


@pytest.fixture(scope="module")
def stack():
    root = stack_root("the stack's end-to-end test", "codat-stack-")
    stack = Stack(
        root=root,
        companies=COMPANIES,
        sync_seconds=20,
        records=20,
        overrides=OVERRIDES,
        connection_extra=BUDGET,
    )
    try:
        stack.start(timeout=300)
    except SystemExit as exc:
        stack.stop()
        pytest.fail(f"the stack did not start: {exc}\n{_tails(stack)}")
    try:
        yield stack
    finally:
        stack.stop()
        shutil.rmtree(root, ignore_errors=True)


def _tails(stack: Stack, lines: int = 15) -> str:
    parts = []
    for log in sorted(stack.logs.glob("*.log")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        parts.append(f"--- {log.name}\n" + "\n".join(tail))
    return "\n".join(parts)


def _until(what: str, check, timeout: float, stack: Stack, every: float = 2.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{_tails(stack)}")


def _instances(api: httpx.Client, run_id: str) -> list[dict]:
    return Stack.task_instances(api, DAG_ID, run_id)


def _tries(api: httpx.Client, run_id: str, ti: dict) -> list[dict]:
    """Every try of one mapped task instance, oldest first (``pid``: the task process of that try)."""
    if ti["try_number"] <= 1:
        return [ti]
    response = api.get(
        f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{ti['task_id']}/{ti['map_index']}/tries"
    )
    response.raise_for_status()
    return sorted(response.json()["task_instances"], key=lambda t: t["try_number"])


def _run_to_end(api: httpx.Client, stack: Stack, run_id: str) -> str:
    def finished():
        state = api.get(f"/dags/{DAG_ID}/dagRuns/{run_id}").json()["state"]
        return state if state in ("success", "failed") else None

    return _until(f"run {run_id} to finish", finished, RUN_TIMEOUT, stack, every=5)


def _trigger(api: httpx.Client) -> str:
    response = api.post(f"/dags/{DAG_ID}/dagRuns", json={"logical_date": None})
    assert response.status_code == 200, response.text
    return response.json()["dag_run_id"]


def _versions_on_disk(stack: Stack) -> dict[tuple[str, str], Counter]:
    """``{(company, type): Counter((id, modifiedDate))}`` over every run's files."""
    return {
        key: Counter((record["id"], record.get("modifiedDate")) for record in records)
        for key, records in read_run_files(stack.destination).items()
    }


def _truth(control, pairs) -> dict[tuple[str, str], set]:
    return {
        (company_id, data_type): set(simulator_versions(control, company_id, data_type).items())
        for company_id, data_type in pairs
    }


def _sync_tasks(instances: list[dict], state: str | None = None) -> list[dict]:
    """The per-company task instances (one mapped ``codat_sync.sync`` per company, labelled by its name)."""
    return [ti for ti in instances if ti["task_id"] == "codat_sync.sync" and state in (None, ti["state"])]


def test_daily_dag_lands_every_version_once_through_a_killed_worker_and_triggerer(stack):
    api = stack.api()
    control = HttpControl(stack.simulator_url)
    linked = set(control.linked_company_ids())
    control.set_rate_limits(requests_per_minute=CODAT_LIMIT_PER_MINUTE)
    _until(f"{DAG_ID} to be parsed", lambda: api.get(f"/dags/{DAG_ID}").status_code == 200, 180, stack)
    assert api.patch(f"/dags/{DAG_ID}", json={"is_paused": False}).status_code == 200

    # 1. A run during which the Redis (Celery's broker and the request budget's store) is killed and started
    # again empty, as a restarted container is: every version still lands once, nothing fails on the budget.
    names = {company["id"]: company["name"] for company in control.companies()}
    first = _trigger(api)
    _until(
        "company syncs under way",
        lambda: [ti for ti in _sync_tasks(_instances(api, first)) if ti["state"] in ("running", "deferred")],
        RUN_TIMEOUT,
        stack,
        every=1,
    )
    stack.kill("redis")
    time.sleep(2)
    stack.spawn("redis")
    assert _run_to_end(api, stack, first) == "success", _tails(stack)
    assert {ti["rendered_map_index"] for ti in _sync_tasks(_instances(api, first), "success")} == {
        names[c] for c in linked
    }
    on_disk = _versions_on_disk(stack)
    pairs = set(on_disk)
    types = {data_type for _, data_type in pairs}
    assert len(types) == 9 and pairs == {(c, t) for c in linked for t in types}
    truth_first = _truth(control, pairs)
    for pair in pairs:
        assert set(on_disk.get(pair, ())) == truth_first[pair], pair
        assert max(on_disk.get(pair, Counter()).values(), default=1) == 1, pair
    # Two workers, the triggerer and the scheduler's tasks spent one request budget (in the stack's Redis):
    # the simulator's per-minute limit was never reached.
    limits = control.rate_limits()
    assert limits["rejected"] == {"minute": 0, "daily": 0, "concurrent": 0}, limits
    assert limits["busiest_minute"] <= CODAT_LIMIT_PER_MINUTE, limits

    budget_faults = [
        path.name
        for path in [*stack.logs.rglob("*.log"), *(stack.home / "logs").rglob("*.log")]
        if any(word in path.read_text(errors="replace") for word in ("NoScriptError", "BudgetStoreError"))
    ]
    assert budget_faults == [], budget_faults

    # 2. New versions, then a run during which the triggerer and a worker die. One company's invoices
    # answer slowly, so that its extract is surely running when its worker is killed.
    for company_id in linked:
        for data_type in ("invoices", "bills", "journalEntries"):
            control.mutate(company_id, data_type, created=2, modified=3, deleted=1)
    slow = sorted(linked)[0]
    control.add_fault("latency", path=f"/companies/{slow}/data/invoices$", method="GET", times=None, delay=15)
    second = _trigger(api)

    deferred = _until(
        "company syncs deferred to the triggerer",
        lambda: _sync_tasks(_instances(api, second), "deferred"),
        RUN_TIMEOUT,
        stack,
        every=1,
    )
    stack.kill("triggerer")
    time.sleep(2)
    stack.spawn("triggerer")
    seen_deferred = {ti["id"] for ti in deferred}

    def slow_extract_running() -> tuple[str, dict] | None:
        for ti in _sync_tasks(_instances(api, second)):
            if ti["state"] == "deferred":
                seen_deferred.add(ti["id"])
            # Running again after its wait: the slow company is extracting (its invoices answer slowly).
            if (
                ti["rendered_map_index"] == names[slow]
                and ti["id"] in seen_deferred
                and ti["state"] == "running"
            ):
                worker = stack.component_of(ti["pid"]) if ti["pid"] else None
                return (worker, ti) if worker and worker.startswith("worker-") else None
        return None

    worker, victim = _until(f"{slow}'s extract to run", slow_extract_running, RUN_TIMEOUT, stack, 0.5)
    killed = stack.kill(worker)  # with it, every task process it ran: other companies' too, at 8 slots
    control.clear_faults()

    assert _run_to_end(api, stack, second) == "success", _tails(stack)
    instances = _sync_tasks(_instances(api, second))
    # (A task instance's id names one try: a retry has a new one.)
    retried = next(ti for ti in instances if ti["map_index"] == victim["map_index"])
    # The killed company task was failed by the scheduler once its heartbeats stopped, and a retry finished it
    # on the other worker; the types it had committed were not read again.
    assert retried["state"] == "success"
    assert retried["try_number"] >= 2, f"{worker} was killed while {slow} was extracting"
    # No wait lost (every company finished) or fired twice: the waits deferred when the triggerer died were
    # resumed by the new one, and a company ran a second try only if its first died with the worker (or never
    # started: reserved by the dead worker, sent again).
    assert {ti["rendered_map_index"] for ti in instances} == {names[c] for c in linked}
    assert all(ti["state"] == "success" for ti in instances), [
        ti for ti in instances if ti["state"] != "success"
    ]
    for ti in instances:
        earlier = _tries(api, second, ti)[:-1]
        assert all(t["pid"] is None or t["pid"] in killed for t in earlier), (
            ti["rendered_map_index"],
            earlier,
        )

    # Every version of both runs on disk exactly once.
    truth_second = _truth(control, pairs)
    on_disk = _versions_on_disk(stack)
    changed = 0
    for pair in pairs:
        counts = on_disk.get(pair, Counter())
        twice = [version for version, count in counts.items() if count > 1]
        assert not twice, (pair, twice[:3])
        assert set(counts) == truth_first[pair] | truth_second[pair], pair
        changed += len(truth_second[pair] - truth_first[pair])
    assert changed >= 6 * len(linked) * 3  # the mutations above landed
