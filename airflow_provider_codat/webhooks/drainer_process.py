"""The drainer in a process of its own beside each API server process, so that answers keep the CPU.

Writing asset events (Airflow's ``register_asset_change``, :mod:`.drain`) is CPU work; in the API server process
it shares one interpreter lock with the answers, and under a burst of deliveries it slowed them from tens of
milliseconds to seconds (bench/README.md). So each API server process starts one drainer process on its first
delivery (:class:`DrainerProcess`), which:

- runs at a lower priority (``nice``), so that the answers win the CPU when both want it;
- is woken through a pipe by each stored delivery, and looks every couple of seconds anyway (:mod:`.drain`);
- stops when its API server process is gone, even killed by SIGKILL: the kernel then closes the pipe's other
  end and the drainer reads end-of-file; it also checks that its parent is still the one that started it.

Nothing about durability changes: the inbox is shared, a row is taken and its events written in one
transaction (exactly once across any number of drainers), and a drainer killed mid-batch rolls back, leaving
the rows to the next drainer. A drainer that exits is started again by the next delivery.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence

log = logging.getLogger(__name__)

DEFAULT_NICE = 10
RESTART_AFTER_SECONDS = 5.0  # a drainer that keeps dying is not started more often than this
PARENT_CHECK_SECONDS = 1.0


class DrainerProcess:
    """Starts and wakes the drainer process of this (API server) process. :meth:`wake` does no I/O but
    starting the process the first time and writing one byte to a pipe.

    :param nice: how much lower the drainer's priority is than this process's.
    :param restart_after: seconds between two starts at least (a drainer that dies at once is not respawned
        on every delivery).
    """

    def __init__(self, *, nice: int = DEFAULT_NICE, restart_after: float = RESTART_AFTER_SECONDS) -> None:
        self.nice = nice
        self.restart_after = restart_after
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._wake_fd: int | None = None
        self._started_at: float | None = None

    @property
    def pid(self) -> int | None:
        """The drainer's process id, while it runs."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def wake(self) -> None:
        """Drain soon (a delivery was stored); starts the drainer process when it is not running."""
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._start()
            fd = self._wake_fd
        if fd is not None:
            # OSError: the pipe is full (the drainer is awake already) or the drainer just exited.
            with contextlib.suppress(OSError):
                os.write(fd, b"\x01")

    def _start(self) -> None:
        now = time.monotonic()
        if self._started_at is not None and now - self._started_at < self.restart_after:
            return
        if self._proc is not None:
            log.warning(
                "The Codat webhook drainer exited (code %s); starting it again", self._proc.returncode
            )
        self._close_pipe()
        read_fd, write_fd = os.pipe()  # neither end is inherited by other children of this process
        os.set_blocking(write_fd, False)
        command = [sys.executable, "-m", __name__, "--wake-fd", str(read_fd)]
        command += ["--parent", str(os.getpid())]
        try:
            self._proc = subprocess.Popen(command, pass_fds=(read_fd,), stdin=subprocess.DEVNULL)
        finally:
            os.close(read_fd)
        # Lower its priority from here (a child's niceness may be raised by its parent's user), at once.
        own = os.getpriority(os.PRIO_PROCESS, 0)
        with contextlib.suppress(OSError):  # it exited already: the next delivery starts another
            os.setpriority(os.PRIO_PROCESS, self._proc.pid, min(own + self.nice, 19))
        self._wake_fd, self._started_at = write_fd, now
        log.info("Started the Codat webhook drainer process %s", self._proc.pid)

    def _close_pipe(self) -> None:
        if self._wake_fd is not None:
            os.close(self._wake_fd)
            self._wake_fd = None

    def stop(self, timeout: float = 10.0) -> None:
        """Close the pipe (the drainer exits at once, a batch in flight rolled back) and wait for it."""
        with self._lock:
            self._close_pipe()
            proc, self._proc = self._proc, None
        if proc is not None:
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def follow_parent(
    wake_fd: int, parent: int, wake: Callable[[], None], every: float = PARENT_CHECK_SECONDS
) -> None:
    """Call ``wake`` for each byte read from ``wake_fd``; return once the parent is gone (end-of-file on the
    pipe, or this process's parent is no longer ``parent``).

    :param wake_fd: the pipe's reading end.
    :param parent: the process id of the API server process that started this one.
    :param wake: wakes the drainer.
    :param every: seconds between two checks of the parent id while nothing arrives.
    """
    while True:
        ready, _, _ = select.select([wake_fd], [], [], every)
        if ready:
            if not os.read(wake_fd, 4096):
                return
            wake()
        elif os.getppid() != parent:
            return


def main(argv: Sequence[str] | None = None) -> None:
    """The drainer process: drain now, then whenever woken, until the API server process is gone."""
    parser = argparse.ArgumentParser(description="Codat webhook inbox drainer (started by the API server)")
    parser.add_argument("--wake-fd", type=int, required=True)
    parser.add_argument("--parent", type=int, required=True)
    args = parser.parse_args(argv)

    from airflow_provider_codat.webhooks.drain import InboxDrainer
    from airflow_provider_codat.webhooks.requeue import RequeueWatcher

    drainer = InboxDrainer(watcher=RequeueWatcher())
    drainer.wake()  # rows a killed process left, and the delivery that started this one
    log.info("The Codat webhook drainer follows the API server process %s", args.parent)
    follow_parent(args.wake_fd, args.parent, drainer.wake)
    log.info("The API server process %s is gone; the Codat webhook drainer stops", args.parent)
    logging.shutdown()
    # At once: a batch in flight is rolled back by the database and drained by the next drainer.
    os._exit(0)


if __name__ == "__main__":
    main()
