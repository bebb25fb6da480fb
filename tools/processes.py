"""Processes by pid, for tools/stack.py: start times (to tell a pid from a reused one), trees (a process and
everything under it, whatever process group each is in), stopping groups, and free ports."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from pathlib import Path


def free_ports(names: list[str]) -> dict[str, int]:
    """A free loopback port per name, all different (each socket stays open until every port is picked)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in names]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return {name: sock.getsockname()[1] for name, sock in zip(names, sockets, strict=True)}


def process_start_time(pid: int) -> str | None:
    """When the process started (clock ticks since boot, ``/proc/<pid>/stat`` field 22); ``None`` once it
    has exited (a zombie that its parent has not reaped yet included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return None if fields[0] in ("Z", "X") else fields[19]


def stop_groups(pids: list[int], timeout: float) -> None:
    """SIGTERM the process groups led by ``pids`` (each stops its own children); SIGKILL whatever of them
    and under them is left after ``timeout``."""
    trees = {pid: process_tree(pid) for pid in pids}
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    left = set().union(*trees.values()) if trees else set()
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        running = {pid for pid, _, _ in processes()}
        left &= running
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def processes() -> list[tuple[int, int, int]]:
    """``(pid, parent pid, process group)`` of every running process (zombies left out)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if fields[0] not in ("Z", "X"):
            found.append((int(stat.parent.name), int(fields[1]), int(fields[2])))
    return found


def process_tree(leader: int) -> set[int]:
    """``leader``'s process group and every descendant of its members, wherever their groups are."""
    running = processes()
    tree = {pid for pid, _, group in running if group == leader} | {leader}
    grew = True
    while grew:
        children = {pid for pid, parent, _ in running if parent in tree} - tree
        tree |= children
        grew = bool(children)
    return tree


def ancestors(pid: int) -> list[int]:
    parents = {child: parent for child, parent, _ in processes()}
    chain = []
    while pid in parents and pid not in chain:
        chain.append(pid)
        pid = parents[pid]
    return chain
