"""The budget in a SQLite file that fails: removed while in use (opened anew, the new file's slice waited out),
and locked by another program for longer than a call's deadline (a clear error after the wait)."""

from __future__ import annotations

import os
import sqlite3
import time

import pytest

from airflow_provider_codat.budget import BudgetSettings, RequestBudget
from airflow_provider_codat.budget.outage import BudgetStoreError


def _budget(path) -> RequestBudget:
    return RequestBudget(BudgetSettings(store=f"sqlite:///{path}", key="api.test", requests_per_minute=120))


def test_a_removed_file_is_opened_anew_and_its_first_slice_waited_out(tmp_path):
    path = tmp_path / "budget.sqlite"
    budget = _budget(path)
    budget.take_token()  # the new file's first slice
    for name in ("budget.sqlite", "budget.sqlite-wal", "budget.sqlite-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    started = time.monotonic()
    budget.take_token(deadline=time.time() + 20)
    # Counted in the file the other processes see, after the slice it owes to having been found empty.
    assert 4.5 <= time.monotonic() - started < 30  # one slice, not a minute (the bound allows a busy machine)
    assert path.exists()
    assert budget.store._file == (os.stat(path).st_dev, os.stat(path).st_ino)


def test_a_file_locked_past_the_deadline_fails_clearly_after_waiting(tmp_path):
    path = tmp_path / "budget.sqlite"
    budget = _budget(path)
    budget.take_token()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    started = time.monotonic()
    with pytest.raises(BudgetStoreError) as raised:
        budget.take_token(deadline=time.time() + 2)
    assert time.monotonic() - started >= 1.0
    assert f"SQLite file sqlite:///{path}" in str(raised.value)
    assert "no other program keeps the file locked" in str(raised.value)
    other.execute("COMMIT")
    other.close()
    budget.take_token(deadline=time.time() + 10)  # the lock gone, tokens come again
