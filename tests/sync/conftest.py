"""Fixtures for the refresh-and-wait tests: the simulator as the Airflow connection, and simulated time.

``sim_clock`` replaces the provider's clock (``sync.interval.CLOCK``) and the clock of Airflow's sensor loop, so
that every sleep of a sensor, trigger or operator advances the simulator's clock instead of waiting: a
ten-minute sync takes milliseconds, over real HTTP.
"""

from __future__ import annotations

import asyncio
import json
import time
import types

import pytest
from airflow.sdk.bases import sensor as airflow_sensor

from airflow_provider_codat.sync.interval import CLOCK, Clock


def connection_json(sim, **extra) -> str:
    return json.dumps({"conn_type": "codat", "host": sim.base_url, "password": sim.api_key, "extra": extra})


@pytest.fixture
def sim(codat_simulator, monkeypatch):
    """The simulator, as connection ``codat_default`` (no retries inside the hook: the waits retry)."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_CODAT_DEFAULT", connection_json(codat_simulator, max_retries=0, timeout=5)
    )
    return codat_simulator


@pytest.fixture
def company_id(sim) -> str:
    """A company whose connections are all Linked."""
    return sim.control.linked_company_ids()[0]


class SimClock(Clock):
    """Wall-clock plus an offset; sleeping moves the offset and the simulator's clock together."""

    def __init__(self, control) -> None:
        self.control = control
        self.offset = 0.0
        self.sleeps: list[float] = []
        # Async sleeps past this offset never return (until cancelled): a triggerer stopped mid-wait.
        self.pause_at: float | None = None
        self.paused = False

    def now(self) -> float:
        return time.time() + self.offset

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.offset += seconds
        self.control.advance(seconds)

    async def asleep(self, seconds: float) -> None:
        if self.pause_at is not None and self.offset >= self.pause_at:
            self.paused = True
            await asyncio.Event().wait()
        self.sleep(seconds)
        await asyncio.sleep(0)


@pytest.fixture
def sim_clock(sim, monkeypatch) -> SimClock:
    clock = SimClock(sim.control)
    for name in ("now", "sleep", "asleep"):
        monkeypatch.setattr(CLOCK, name, getattr(clock, name))
    # BaseSensorOperator's poke loop measures with time.monotonic() and waits with time.sleep().
    monkeypatch.setattr(airflow_sensor, "time", types.SimpleNamespace(monotonic=clock.now, sleep=clock.sleep))
    return clock


class FakeTI:
    """What the tasks use of a task instance: XCom pushes and the first reschedule date."""

    def __init__(self, first_reschedule=None) -> None:
        self.xcoms: dict = {}
        self.first_reschedule = first_reschedule

    def xcom_push(self, key, value) -> None:
        self.xcoms[key] = value

    def get_first_reschedule_date(self, context):
        return self.first_reschedule


@pytest.fixture
def context():
    return {"ti": FakeTI()}


def requests(sim, method=None, contains=""):
    return [
        r
        for r in sim.control.request_log()
        if (method is None or r["method"] == method) and contains in r["path"]
    ]
