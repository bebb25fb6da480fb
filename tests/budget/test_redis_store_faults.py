"""The budget in a real ``redis-server`` that fails under several OS processes spending it: killed and
restarted empty, down for 20 seconds, its scripts flushed, down when the processes start, down past the calls'
deadline. Codat's minute is shortened to 6 seconds here (and its slice to half a second) so that windows that
span a fault are measured in seconds; ``python -m tests.budget.store_faults`` gives the figures at full scale.

The scenarios run at once (each its own Redis on a free port, its own folder), then each test reads its own.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from tests.budget.store_faults import SCENARIOS, Figures, Scenario, run

# One worker runs this module: its module-scoped fixture is costly to build (pytest-xdist --dist loadgroup).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("test_redis_store_faults")]

MINUTE = 6.0  # seconds standing for Codat's 60
SLICE = MINUTE / 12
RATE = 90  # the budget's rate: 900 a minute, as by default
CODAT_LIMIT = 100  # Codat's 1,000 a minute, to the same scale
SECONDS = 14.0  # how long the processes spend; each fault starts at its scenario's fraction of it
PROCESSES = 2  # several processes share one store; each imports Airflow (seconds of CPU), so two
PASSWORD = "s3cret-redis-password"

RUNS = {
    **{name: (scenario, 30.0) for name, scenario in SCENARIOS.items()},
    # Down for longer than the calls' deadline: they fail, after waiting for it.
    "past-deadline": (Scenario("Redis down past the deadline", stop=0.3, down=6), 2.5),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, tuple[Figures, float]]:
    if not shutil.which("redis-server"):
        pytest.fail("redis-server is needed: apt-get install -y redis-server")
    results: dict[str, tuple[Figures, float] | BaseException] = {}

    # Made here, not in the threads: pytest's tmp_path_factory is not thread-safe.
    folders = {name: Path(tmp_path_factory.mktemp(name)) for name in RUNS}

    def one(name: str, scenario: Scenario, deadline: float) -> None:
        folder = folders[name]
        try:
            results[name] = run(
                scenario,
                folder,
                processes=PROCESSES,
                seconds=SECONDS,
                minute=MINUTE,
                rate=RATE,
                deadline=deadline,
                password=PASSWORD if name == "past-deadline" else None,
            )
        except BaseException as exc:  # raised in the test that reads it
            results[name] = exc

    threads = [threading.Thread(target=one, args=(name, *args)) for name, args in RUNS.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    for value in results.values():
        if isinstance(value, BaseException):
            raise value
    return results  # type: ignore[return-value]


def _check_recovered(figures: Figures, back: float, within: float) -> None:
    assert figures.failures == []
    assert figures.busiest(MINUTE) <= CODAT_LIMIT
    recovery = figures.recovery(back)
    assert recovery is not None and recovery <= within, recovery
    # Every process went on spending once the store was back (its call in flight at least: an outage longer
    # than the processes' spending ends it with that call).
    assert len([at for at in figures.tokens if at >= back]) >= PROCESSES


def test_redis_killed_and_restarted_empty_fails_nothing_and_pauses_one_slice(runs):
    figures, back = runs["restart"]
    _check_recovered(figures, back, within=SLICE + 2.5)
    # The emptied store gives nothing for one slice after it is found empty (at or after `back`).
    assert figures.recovery(back) >= SLICE * 0.9


def test_redis_down_20_seconds_is_waited_for_within_the_deadline(runs):
    figures, back = runs["outage"]
    _check_recovered(figures, back, within=SLICE + 2.5)  # the last pause between looks is at most 2 s


def test_script_flush_is_recovered_from_at_once(runs):
    figures, back = runs["flush"]
    _check_recovered(figures, back, within=SLICE)


def test_redis_down_when_the_processes_start_is_waited_for(runs):
    figures, back = runs["down-at-start"]
    _check_recovered(figures, back, within=SLICE + 2.5)


def test_redis_down_past_the_deadline_fails_clearly_after_waiting(runs):
    figures, back = runs["past-deadline"]
    assert figures.failures, "calls waited past their deadline"
    # Each failure came after the call's whole wait (2.5 s), never in a tight loop.
    assert figures.quickest_failure() >= 2.4
    assert len(figures.failures) <= PROCESSES * (6 / 2.5 + 1)
    store_errors = [error for _, error in figures.failures if error.startswith("BudgetStoreError")]
    assert store_errors, figures.failures
    for _, error in figures.failures:
        assert PASSWORD not in error
        if error in store_errors:
            assert error.startswith(
                "BudgetStoreError: The Codat request budget's store, Redis redis://127.0.0.1:"
            )
            assert "Check that the Redis server is running" in error and "request_budget_store" in error
        else:  # a call whose deadline came while the store, back, was still paced: no token in time
            assert error.startswith("PoolTimeout: No token of the Codat request budget"), error
    _check_recovered(Figures(tokens=figures.tokens), back, within=SLICE + 2.5)
