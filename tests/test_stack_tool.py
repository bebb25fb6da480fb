"""tools/stack.py without starting the stack: its settings file parser, and that `stop` signals only the
processes it started (a pid file whose process is gone, or whose pid now belongs to another, is left alone)."""

from __future__ import annotations

import subprocess
import time

import pytest
from stack import (
    AIRFLOW_COMPONENTS,
    Stack,
    process_start_time,
    shared_settings,
)  # tools/, on pytest's pythonpath


def test_a_bad_settings_line_is_named_with_its_number(tmp_path):
    path = tmp_path / "airflow.env"
    path.write_text("# comment\n\nAIRFLOW__CORE__EXECUTOR=CeleryExecutor\nnot a setting\n")
    with pytest.raises(ValueError, match=r"line 4: expected KEY=VALUE, got 'not a setting'"):
        shared_settings(path)
    path.write_text("A=1\n B = two \n")
    assert shared_settings(path) == {"A": "1", "B": "two"}


def _sleeper() -> subprocess.Popen:
    return subprocess.Popen(["sleep", "60"], start_new_session=True)


def test_stop_signals_exactly_the_process_groups_it_recorded(tmp_path):
    stack = Stack(root=tmp_path)
    stack.run_dir.mkdir(parents=True)
    ours, stranger = _sleeper(), _sleeper()
    try:
        stack.pid_file("scheduler").write_text(f"{ours.pid} {process_start_time(ours.pid)}\n")
        # A pid file whose pid was reused by another process: same pid, another start time.
        stack.pid_file("triggerer").write_text(f"{stranger.pid} 1\n")
        assert stack.pid("scheduler") == ours.pid
        assert stack.pid("triggerer") is None
        assert stack.stop(timeout=10) == ["scheduler"]
        assert ours.wait(timeout=10) is not None
        time.sleep(0.2)
        assert stranger.poll() is None, "stop signalled a process it did not start"
        assert not any(stack.pid_file(name).exists() for name in AIRFLOW_COMPONENTS)
    finally:
        for proc in (ours, stranger):
            proc.kill()
            proc.wait()


def test_a_dead_process_is_not_running_even_before_it_is_reaped(tmp_path):
    stack = Stack(root=tmp_path)
    stack.run_dir.mkdir(parents=True)
    proc = _sleeper()
    stack.pid_file("worker-1").write_text(f"{proc.pid} {process_start_time(proc.pid)}\n")
    proc.kill()
    time.sleep(0.5)  # a zombie now: this test, its parent, has not waited for it
    try:
        assert stack.pid("worker-1") is None
        with pytest.raises(RuntimeError, match="worker-1 is not running"):
            stack.kill("worker-1")
    finally:
        proc.wait()


def _running(pid: int) -> bool:
    try:
        return process_start_time(pid) is not None  # None: a zombie, killed but not reaped yet
    except FileNotFoundError:
        return False


def test_kill_takes_the_processes_in_groups_of_their_own_with_it(tmp_path):
    """A worker dying takes its tasks with it, though Airflow runs each task in a process group of its own."""
    stack = Stack(root=tmp_path)
    stack.run_dir.mkdir(parents=True)
    leader = subprocess.Popen(
        ["bash", "-c", "setsid sleep 60 & echo $! > task.pid; wait"], cwd=tmp_path, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 10
        while not (tmp_path / "task.pid").exists() or not (tmp_path / "task.pid").read_text().strip():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        task = int((tmp_path / "task.pid").read_text())
        stack.pid_file("worker-1").write_text(f"{leader.pid} {process_start_time(leader.pid)}\n")
        assert stack.component_of(task) == "worker-1"
        assert {leader.pid, task} <= stack.kill("worker-1")
        assert leader.wait(timeout=10) == -9
        time.sleep(0.3)
        assert not _running(task)
    finally:
        if leader.poll() is None:
            leader.kill()
        leader.wait()
