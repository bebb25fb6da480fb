"""API cost of a wait: HTTP calls the sensor makes while a sync runs, in poke mode and deferrable (its
one check in ``execute``, then the trigger's polls).

Runs the simulator in-process with syncs that take ``--sync-seconds`` (default 600: ten minutes) of simulated
time. The provider's clock is replaced by one whose sleeps advance the simulator's clock, so a ten-minute wait
takes well under a second while every poll is a real HTTP request. Calls are counted from the simulator's
request log, from the moment the refresh has been queued until the wait returns.

    .venv/bin/python bench/sync_wait.py [--sync-seconds 600] [--types 1 20]

Target: at most 15 calls for a ten-minute wait, whatever the number of types.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import time
import types
from collections import Counter

import structlog
from airflow.sdk.bases import sensor as airflow_sensor

from airflow_provider_codat.simulator.server import run_in_thread
from airflow_provider_codat.simulator.world import SimulatorState
from airflow_provider_codat.sync.interval import CLOCK, Clock

TYPES = [
    "invoices", "bills", "customers", "suppliers", "journalEntries", "journals", "payments", "billPayments",
    "creditNotes", "billCreditNotes", "taxRates", "items", "paymentMethods", "purchaseOrders", "salesOrders",
    "trackingCategories", "chartOfAccounts", "company", "balanceSheet", "profitAndLoss",
]  # fmt: skip
TARGET = 15


class ScaledClock(Clock):
    """Wall-clock plus an offset; a sleep advances the offset and the simulator's clock instead of waiting."""

    def __init__(self, control) -> None:
        self.control = control
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def sleep(self, seconds: float) -> None:
        self.offset += seconds
        self.control.advance(seconds)

    def install(self) -> None:
        """Be the provider's clock, and the clock of Airflow's sensor loop (``time.monotonic``/``sleep``)."""
        for name in ("now", "sleep", "asleep"):
            setattr(CLOCK, name, getattr(self, name))
        airflow_sensor.time = types.SimpleNamespace(monotonic=self.now, sleep=self.sleep)

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)
        await asyncio.sleep(0)


class _TI:
    def xcom_push(self, key, value) -> None:
        pass

    def get_first_reschedule_date(self, context):
        return None


def _queue(company_id: str, types: list[str]) -> dict:
    from airflow_provider_codat.operators.refresh import CodatQueueDataTypesOperator

    return CodatQueueDataTypesOperator(task_id="queue", company_id=company_id, data_types=types).execute(
        {"ti": _TI()}
    )


def _sensor(ticket: dict) -> dict:
    from airflow_provider_codat.sensors.sync import CodatSyncSensor

    return CodatSyncSensor(task_id="wait", ticket=ticket, timeout=7200).execute({"ti": _TI()})


def _deferred(ticket: dict) -> dict:
    """The deferrable sensor: its one check in ``execute``, then the trigger's polls, then ``execute_complete``."""
    from airflow_provider_codat.sensors.sync import CodatSyncSensor
    from airflow_provider_codat.version_compat import TaskDeferred

    sensor = CodatSyncSensor(task_id="wait", ticket=ticket, timeout=7200, deferrable=True)
    try:
        return sensor.execute({"ti": _TI()})
    except TaskDeferred as deferred:
        trigger = deferred.trigger

    async def run() -> dict:
        return [event.payload async for event in trigger.run()][0]

    return sensor.execute_complete({"ti": _TI()}, asyncio.run(run()))


def measure(mode: str, n_types: int, sync_seconds: float) -> dict:
    state = SimulatorState(sync_seconds=sync_seconds)
    with run_in_thread(state) as sim:
        os.environ.update(sim.conn_env)
        clock = ScaledClock(sim.control)
        clock.install()
        company_id = sim.control.linked_company_ids()[0]
        ticket = _queue(company_id, TYPES[:n_types])
        sim.control.reset_request_log()
        start = clock.offset
        outcomes = _sensor(ticket) if mode == "sensor (poke)" else _deferred(ticket)
        assert all(o["status"] == "Complete" for o in outcomes.values()), outcomes
        log = sim.control.request_log()
    kinds = Counter("history" if "/data/history" in r["path"] else "dataStatus" for r in log)
    return {
        "mode": mode,
        "types": n_types,
        "calls": len(log),
        "dataStatus": kinds["dataStatus"],
        "history": kinds["history"],
        "waited": clock.offset - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sync-seconds", type=float, default=600.0)
    parser.add_argument("--types", type=int, nargs="+", default=[1, 20])
    args = parser.parse_args()
    # The waits log every poll; only the table matters here.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    rows = [
        measure(mode, n, args.sync_seconds) for mode in ("sensor (poke)", "deferrable") for n in args.types
    ]
    print(f"Sync of {args.sync_seconds:.0f} s (simulated); defaults poke 5 s doubling to 300 s.")
    print(f"{'mode':<14} {'types':>5} {'calls':>5} {'dataStatus':>10} {'history':>7} {'waited (s)':>10}  ok?")
    # The target is for a ten-minute wait; a longer one pays one call per max interval beyond it.
    judged = args.sync_seconds <= 600
    for row in rows:
        ok = ("yes" if row["calls"] <= TARGET else "NO") if judged else "n/a"
        print(
            f"{row['mode']:<14} {row['types']:>5} {row['calls']:>5} {row['dataStatus']:>10} "
            f"{row['history']:>7} {row['waited']:>10.0f}  {ok}"
        )
    if judged and any(row["calls"] > TARGET for row in rows):
        raise SystemExit(f"Over the target: more than {TARGET} calls for one wait.")


if __name__ == "__main__":
    main()
