"""The drainer process beside each API server process: woken through its pipe, niced, started again when it
exits, and gone when its API server process is, even killed by SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import psutil
import pytest

from airflow_provider_codat.webhooks.drainer_process import DrainerProcess, follow_parent


def test_each_byte_wakes_the_drainer_and_the_end_of_the_pipe_stops_it():
    read_fd, write_fd = os.pipe()
    wakes = []
    follower = threading.Thread(target=follow_parent, args=(read_fd, os.getppid(), lambda: wakes.append(1)))
    follower.start()
    os.write(write_fd, b"\x01")
    deadline = time.monotonic() + 5
    while not wakes and time.monotonic() < deadline:
        time.sleep(0.01)
    assert wakes and follower.is_alive()
    os.close(write_fd)  # what the kernel does when the API server process dies
    follower.join(timeout=5)
    assert not follower.is_alive()
    os.close(read_fd)


def test_a_parent_that_is_no_longer_its_parent_stops_it():
    read_fd, write_fd = os.pipe()
    try:
        started = time.monotonic()
        follow_parent(read_fd, parent=-1, wake=lambda: None, every=0.01)  # returns: -1 is nobody's parent
        assert time.monotonic() - started < 5
    finally:
        os.close(read_fd)
        os.close(write_fd)


def test_a_drainer_that_exits_is_started_again_by_the_next_delivery_but_not_in_a_loop(monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    drainer = DrainerProcess(restart_after=0)
    try:
        drainer.wake()
        first = drainer.pid
        assert first is not None and psutil.Process(first).nice() == psutil.Process().nice() + 10
        os.kill(first, signal.SIGKILL)
        drainer._proc.wait(10)
        drainer.wake()
        assert drainer.pid not in (None, first)
        drainer.restart_after = 60  # dying again at once: not respawned on every delivery
        os.kill(drainer.pid, signal.SIGKILL)
        drainer._proc.wait(10)
        drainer.wake()
        assert drainer.pid is None
    finally:
        drainer.stop()


API_SERVER = textwrap.dedent(
    """
    import time
    from airflow_provider_codat.webhooks.drainer_process import DrainerProcess

    drainer = DrainerProcess()
    drainer.wake()
    print(drainer.pid, flush=True)
    time.sleep(300)
    """
)


@pytest.mark.slow
def test_the_drainer_stops_when_its_api_server_process_is_killed(tmp_path):
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path)}
    parent = subprocess.Popen(
        [sys.executable, "-c", API_SERVER],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        child = psutil.Process(int(parent.stdout.readline()))
        for line in parent.stdout:  # the drainer's log goes where its API server's does
            if "drainer follows the API server process" in line:
                break
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        child.wait(30)  # raises TimeoutExpired if it outlives its API server process
    finally:
        parent.kill()
        parent.wait()
    assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
