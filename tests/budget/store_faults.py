"""Processes spending one request budget while its store fails, measured: calls failed, the busiest window
(Codat's 60 seconds, shortened in tests), and seconds from the store's return to the next token.

Each worker is its own OS process (``python -m tests.budget.store_faults worker ...``) that takes tokens and a
company's place as fast as the budget gives them and writes one line per call. Run it as a script for the
figures at Codat's own scale::

    .venv/bin/python -m tests.budget.store_faults restart --minute 60 --rate 900 --seconds 150
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A real ``redis-server`` of its own (no persistence: a restart comes back empty), on a free port.

    :param folder: its working folder.
    """

    def __init__(self, folder: Path, password: str | None = None) -> None:
        self.folder = folder
        self.port = free_port()
        self.password = password
        self.url = f"redis://{f':{password}@' if password else ''}127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.folder.mkdir(parents=True, exist_ok=True)
        command = [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.folder)]
        command += ["--save", "", "--appendonly", "no"] + (
            ["--requirepass", self.password] if self.password else []
        )
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        client.close()

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)


@dataclass
class Figures:
    """What a run measured.

    :param tokens: epoch seconds of every token taken, all processes.
    :param failures: ``(seconds the call waited, error text)`` of every failed call.
    """

    tokens: list[float] = field(default_factory=list)
    failures: list[tuple[float, str]] = field(default_factory=list)

    def busiest(self, window: float) -> int:
        """Most tokens in any ``window`` seconds."""
        times = sorted(self.tokens)
        return max((bisect_right(times, t + window) - i for i, t in enumerate(times)), default=0)

    def recovery(self, back: float) -> float | None:
        """Seconds from ``back`` (the store answering again) to the first token after it."""
        later = [t for t in self.tokens if t >= back]
        return min(later) - back if later else None

    def quickest_failure(self) -> float | None:
        return min((waited for waited, _ in self.failures), default=None)


def start_workers(
    store: str, folder: Path, *, count: int, seconds: float, minute: float, rate: int, deadline: float
) -> list[subprocess.Popen]:
    """``count`` worker processes spending the budget in ``store`` for ``seconds``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("CODAT_REQUEST_BUDGET_STORE", None)
    return [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.budget.store_faults",
                "worker",
                store,
                str(folder / f"worker-{n}.log"),
            ]
            + [f"--seconds={seconds}", f"--minute={minute}", f"--rate={rate}", f"--deadline={deadline}"],
            env=env,
            cwd=ROOT,
        )
        for n in range(count)
    ]


def wait_ready(folder: Path, count: int, timeout: float = 300) -> None:
    """Until every worker has imported what it needs (the fault is timed from then)."""
    deadline = time.monotonic() + timeout
    while len([log for log in folder.glob("worker-*.log") if log.stat().st_size]) < count:
        assert time.monotonic() < deadline, "the workers did not start"
        time.sleep(0.05)


def collect(workers: list[subprocess.Popen], folder: Path, timeout: float) -> Figures:
    figures = Figures()
    for worker in workers:
        worker.wait(timeout)
        assert worker.returncode == 0, f"a worker ended with {worker.returncode}"
    for log in sorted(folder.glob("worker-*.log")):
        for line in log.read_text().splitlines():
            entry = json.loads(line)
            if "ready" in entry:
                continue
            if entry["ok"]:
                figures.tokens.append(entry["at"])
            else:
                figures.failures.append((entry["waited"], entry["error"]))
    return figures


def worker(store: str, out: str, *, seconds: float, minute: float, rate: int, deadline: float) -> None:
    """Take tokens (and a company's place, so the lease script runs too) until ``seconds`` have passed."""
    from airflow_provider_codat.budget import request_budget
    from airflow_provider_codat.budget.request_budget import RequestBudget
    from airflow_provider_codat.budget.settings import BudgetSettings

    request_budget.MINUTE_SECONDS = minute
    request_budget.SMOOTHING_SECONDS = minute / 12
    budget = RequestBudget(BudgetSettings(store=store, key="api.test", requests_per_minute=rate))
    end = time.time() + seconds
    with open(out, "a", buffering=1) as log:
        log.write(json.dumps({"ready": time.time()}) + "\n")
        while time.time() < end:
            started = time.time()
            try:
                budget.take_token(deadline=started + deadline)
                with budget.company_place("company-1", ttl=5, deadline=started + deadline):
                    pass
            except Exception as exc:  # every failure is counted, whatever its kind
                waited = time.time() - started
                log.write(
                    json.dumps({"ok": False, "waited": waited, "error": f"{type(exc).__name__}: {exc}"})
                )
            else:
                log.write(json.dumps({"ok": True, "at": time.time()}))
            log.write("\n")


@dataclass
class Scenario:
    """One fault, timed from the workers' start: the store stops at ``stop`` and answers again ``down``
    seconds later (``flush``: its scripts flushed instead, nothing stopped)."""

    name: str
    stop: float
    down: float
    flush: bool = False


SCENARIOS = {
    "restart": Scenario("Redis killed and restarted empty", stop=0.4, down=2),
    "outage": Scenario("Redis down 20 s", stop=0.3, down=20),
    "flush": Scenario("SCRIPT FLUSH", stop=0.4, down=0, flush=True),
    "down-at-start": Scenario("Redis down at start", stop=0, down=5),
}


def run(
    scenario: Scenario,
    folder: Path,
    *,
    processes: int,
    seconds: float,
    minute: float,
    rate: int,
    deadline: float,
    password: str | None = None,
) -> tuple[Figures, float]:
    """Run ``scenario`` (its ``stop`` a fraction of ``seconds``); the figures and when the store was back."""
    server = RedisServer(folder / "redis", password)
    if scenario.stop > 0:
        server.start()
    workers = start_workers(
        server.url, folder, count=processes, seconds=seconds, minute=minute, rate=rate, deadline=deadline
    )
    try:
        wait_ready(folder, processes)
        time.sleep(scenario.stop * seconds)
        if scenario.flush:
            with server.client() as client:
                client.script_flush()
        else:
            server.kill()
            time.sleep(scenario.down)
            server.start()
        back = time.time()
        figures = collect(workers, folder, timeout=seconds + deadline + 60)
    finally:
        for process in workers:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
        server.kill()
    return figures, back


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=[*SCENARIOS, "worker"])
    parser.add_argument("store", nargs="?")
    parser.add_argument("out", nargs="?")
    parser.add_argument("--seconds", type=float, default=150)
    parser.add_argument("--minute", type=float, default=60)
    parser.add_argument("--rate", type=int, default=900)
    parser.add_argument("--deadline", type=float, default=60)
    parser.add_argument("--processes", type=int, default=3)
    args = parser.parse_args()
    common = {"seconds": args.seconds, "minute": args.minute, "rate": args.rate, "deadline": args.deadline}
    if args.what == "worker":
        worker(args.store, args.out, **common)
        return
    scenario = SCENARIOS[args.what]
    with tempfile.TemporaryDirectory(prefix="codat-store-faults-") as folder:
        figures, back = run(scenario, Path(folder), processes=args.processes, **common)
    recovery = figures.recovery(back)
    print(
        f"{scenario.name}: {args.processes} processes, {args.seconds:.0f} s at {args.rate} a {args.minute:g} s: "
        f"{len(figures.tokens)} tokens, {len(figures.failures)} failed calls, busiest {args.minute:g} s "
        f"{figures.busiest(args.minute)}, recovered in {recovery if recovery is None else round(recovery, 2)} s"
    )


if __name__ == "__main__":
    main()
