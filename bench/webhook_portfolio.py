"""A simulated day of N companies on the webhook (portfolio) path and on the polling path, side by side.

The simulator runs in a process of its own, with Codat's limits (1,000 requests a minute per IP; the provider's
budget 900) and, for the webhook path, Codat's own schedule: every company's 9 daily types synced once a day
at the company's own phase, about half of the companies with changes (``change_fraction``), each finished sync
announced by a signed ``read.completed`` POSTed to the provider's real receiver app (served here by uvicorn).
The day is compressed: the simulator's clock moves one window (``--window``, simulated seconds) at a time, and
after each step the window's deliveries are handled as ``codat_portfolio_changes`` handles them: the drainer's
extra (``portfolio/route.py``), then the DAG's task functions in order (``plan``, one ``extract`` per batch of
50 companies, ``finish``: one Delta merge per type for the window). At the end of the day the sweep runs once
(``codat_portfolio_sweep``'s functions).

The polling path is ``codat_sync_daily`` as its per-company task runs it (``CompanySync``: queue 9 types, wait
with ``dataStatus``, extract, then one merge per type per batch of 50 companies), the provider's clock replaced
by one whose sleeps move the simulator's clock (a wait costs its real requests, not its minutes).

What is measured: requests per company per day by endpoint (the simulator's request log), Delta commits
(each table's history), CPU (this process: receiver, windows, merges; and the simulator's process), the
window's processing time. What is counted from the DAGs' shapes, not run under a scheduler: task instances,
DAG runs, asset events, inbox and XCom rows (the bench runs the DAGs' functions in one process, not Airflow).
Latency, webhook path: a changed type's sync completion (the simulator's ``completed``) to the end of the
window that merged it, i.e. the simulated wait for the window's end plus the window's measured processing
time. Polling path: a daily run, so the wait for the next run (uniform over the day) plus the run's time.

    .venv/bin/python bench/webhook_portfolio.py --companies 50
    .venv/bin/python bench/webhook_portfolio.py --companies 1000 --skip-polling
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from airflow_provider_codat.portfolio.dag import PORTFOLIO_TYPES
from airflow_provider_codat.simulator.world import DEFAULT_API_KEY

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TYPES = list(PORTFOLIO_TYPES)
DAY = 86_400
BATCH = 50


class Simulator:
    """The simulator in its own process, driven over its control API."""

    def __init__(self, port: int) -> None:
        self.base_url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "airflow_provider_codat.simulator", "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.http = httpx.Client(base_url=self.base_url, timeout=120)
        for _ in range(200):
            try:
                self.http.get("/_simulator/companies")
                break
            except httpx.HTTPError:
                time.sleep(0.1)

    def op(self, name: str, **kwargs: Any) -> Any:
        answer = self.http.post(f"/_simulator/{name}", json=kwargs)
        answer.raise_for_status()
        return answer.json()["result"]

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def connection(sim: Simulator, api_key: str) -> None:
    extra = {"requests_per_minute": 900, "timeout": 60}
    os.environ["AIRFLOW_CONN_CODAT_DEFAULT"] = json.dumps(
        {"conn_type": "codat", "host": sim.base_url, "password": api_key, "extra": extra}
    )


def by_endpoint(log: list[dict]) -> Counter:
    from tests.portfolio.day import requests_by_endpoint

    return requests_by_endpoint(log)


def delta_commits(destination: str) -> int:
    from deltalake import DeltaTable

    total = 0
    for key in TYPES:
        path = f"{destination}/_tables/{key}"
        if DeltaTable.is_deltatable(path):
            total += sum(1 for h in DeltaTable(path).history() if h.get("operation") in ("MERGE", "WRITE"))
    return total


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[index]


# -- the webhook path -----------------------------------------------------------------------------------
class MemoryStore:
    """The receiver's store, in memory: what the inbox would hold (one row per delivery)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.waiting: list = []
        self.ids: set[str] = set()
        self.rows = 0

    def __call__(self, delivery):
        from airflow_provider_codat.webhooks.store import Stored

        with self.lock:
            if delivery.webhook_id in self.ids:
                return Stored(duplicate=True)
            self.ids.add(delivery.webhook_id)
            self.waiting.append(delivery)
            self.rows += 1
        return Stored(duplicate=False)

    def take(self) -> list:
        with self.lock:
            taken, self.waiting = self.waiting, []
        return taken


def start_receiver(secret: str, store: MemoryStore) -> tuple[str, Any]:
    import uvicorn

    from airflow_provider_codat.webhooks.dedupe import RecentIds
    from airflow_provider_codat.webhooks.receiver import ReceiverParts, create_receiver_app
    from airflow_provider_codat.webhooks.secret import CachedVerifier

    parts = ReceiverParts(verifier=CachedVerifier(lookup=lambda _conn: secret), seen=RecentIds(), store=store)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_receiver_app(parts), host="127.0.0.1", port=port, log_level="error")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}/webhooks", server


def webhook_day(sim: Simulator, args: argparse.Namespace, destination: str) -> dict[str, Any]:
    from airflow_provider_codat.hooks.codat import CodatHook
    from airflow_provider_codat.portfolio.marks import fold_marks, read_marks
    from airflow_provider_codat.portfolio.route import portfolio_extra
    from airflow_provider_codat.portfolio.sweep import suspect_companies, sweep_companies
    from airflow_provider_codat.portfolio.sync_settings import apply_schedules
    from airflow_provider_codat.portfolio.window import (
        company_batches,
        extract_companies,
        finish_window,
        window_changes,
    )
    from airflow_provider_codat.values import CompanyId

    sim.op(
        "reset",
        companies=args.companies,
        records=args.records,
        sync_seconds=args.sync_seconds,
        scheduled_syncs=True,
        change_fraction=args.change_fraction,
        requests_per_minute=1000,
    )
    connection(sim, DEFAULT_API_KEY)
    store = MemoryStore()
    secret = "whsec_" + "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3"
    url, server = start_receiver(secret, store)
    sim.op("configure_webhooks", url=url, secret=secret)
    hook = CodatHook()
    companies = sim.op("linked_company_ids")
    # Set-up, once per company in its life (not a day's cost): Codat syncs the 9 types daily on its own.
    sim.op("reset_request_log")
    for company_id in companies:
        apply_schedules(hook, CompanyId.parse(company_id), dict.fromkeys(TYPES, 24))
    setup_requests = len(sim.op("request_log"))
    sim.op("reset_request_log")

    cpu0, sim_cpu0, wall0 = own_cpu(), sim.cpu_seconds(), time.monotonic()
    windows: list[dict[str, Any]] = []
    webhook_window: dict[
        str, tuple[float, float]
    ] = {}  # webhook id -> (window end, simulated epoch; its seconds)
    changed_types: dict[str, set[str]] = {}
    task_instances = 0
    steps = math.ceil(DAY / args.window)
    for step in range(steps):
        sim.op("advance", seconds=args.window)
        window_end = _epoch(sim.op("now"))
        # The simulator's sender settles, composes and delivers every 0.2 s: wait until the deliveries stop.
        time.sleep(0.3)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            before = store.rows
            time.sleep(0.2)
            if store.rows == before:
                break
        deliveries = store.take()
        if not deliveries:
            continue
        started = time.monotonic()
        extra = portfolio_extra([(d.webhook_id, d.company_id, d.notices) for d in deliveries])
        run_id = f"window_{step:04d}"
        changes = window_changes([extra], TYPES)
        batches = company_batches(changes, BATCH)
        results = [extract_companies(hook, b, destination=destination, run_id=run_id) for b in batches]
        summary = finish_window(results, destination=destination, run_id=run_id)
        seconds = time.monotonic() - started
        task_instances += 2 + len(batches)
        windows.append(
            {
                "step": step,
                "deliveries": len(deliveries),
                "companies": len(changes),
                "changed": sum(len(c["changed"]) for c in changes),
                "batches": len(batches),
                "merged_types": len(summary["merged"]),
                "seconds": seconds,
                "failed": summary["failed"],
            }
        )
        for d in deliveries:
            webhook_window[d.webhook_id] = (window_end, seconds)
            changed_types[d.webhook_id] = {
                n.extra["data_type"] for n in d.notices if n.extra.get("records_modified", True)
            }
    day_wall = time.monotonic() - wall0
    day_cpu, day_sim_cpu = own_cpu() - cpu0, sim.cpu_seconds() - sim_cpu0
    day_log = sim.op("request_log")

    # The sweep at the end of the day.
    sim.op("reset_request_log")
    sweep_started, sweep_cpu0 = time.monotonic(), own_cpu()
    marks, _ = read_marks(destination)
    suspects = suspect_companies(list(hook.list_companies(page_size=5000)), marks, TYPES)
    sweep_results = [
        sweep_companies(hook, suspects[i : i + BATCH], TYPES, destination=destination, run_id="sweep_1")
        for i in range(0, len(suspects), BATCH)
    ]
    finish_window(sweep_results, destination=destination, run_id="sweep_1")
    fold_marks(destination)
    sweep_seconds, sweep_cpu = time.monotonic() - sweep_started, own_cpu() - sweep_cpu0
    sweep_log = sim.op("request_log")
    task_instances += 2 + math.ceil(len(suspects) / BATCH)

    # Latency: each changed type's sync completion (from the simulator's history, read after the counts) to
    # the end of the window that merged it.
    deliveries_log = sim.op("webhook_deliveries")
    delivered = {}
    for entry in deliveries_log:
        if (
            entry["status"] is not None
            and 200 <= entry["status"] < 300
            and entry["webhookId"] in webhook_window
        ):
            delivered.setdefault(entry["webhookId"], entry)
    completed: dict[str, float] = {}
    for company_id in companies:
        for item in hook.iter_pull_operations(company_id, page_size=5000):
            if item.get("completed") and item.get("status") == "Complete":
                completed[item["id"]] = _epoch(item["completed"])
    latencies = []
    changed_companies = set()
    for webhook_id, entry in delivered.items():
        window_end, seconds = webhook_window[webhook_id]
        for data_type, dataset_id in zip(entry["dataTypes"], entry["datasetIds"], strict=False):
            done = completed.get(dataset_id)
            if done is not None and data_type in changed_types[webhook_id]:
                latencies.append(window_end - done + seconds)
                changed_companies.add(entry["companyId"])
    server.should_exit = True
    sim.op("stop_webhooks")
    changed_windows = [w for w in windows if w["changed"]]
    return {
        "path": "webhook",
        "companies": len(companies),
        "setup_requests": setup_requests,
        "day_requests": by_endpoint(day_log),
        "sweep_requests": by_endpoint(sweep_log),
        "companies_with_changes": len(changed_companies),
        "deliveries": store.rows,
        "windows": len(windows),
        "windows_with_changes": len(changed_windows),
        "window_seconds_p50": percentile([w["seconds"] for w in changed_windows], 0.5),
        "window_seconds_max": max((w["seconds"] for w in changed_windows), default=0.0),
        "task_instances": task_instances,
        "delta_commits": delta_commits(destination),
        "latency_p50": percentile(latencies, 0.5),
        "latency_p95": percentile(latencies, 0.95),
        "latencies": len(latencies),
        "suspects": len(suspects),
        "day_wall": day_wall,
        "cpu": day_cpu,
        "sim_cpu": day_sim_cpu,
        "sweep_seconds": sweep_seconds,
        "sweep_cpu": sweep_cpu,
        "failed": [w["failed"] for w in windows if w["failed"]],
    }


def _epoch(value: str) -> float:
    from airflow_provider_codat.landing.records import instant_key

    return datetime.fromisoformat(instant_key(value)[:26]).replace(tzinfo=UTC).timestamp()


# -- the polling path -----------------------------------------------------------------------------------
def polling_day(sim: Simulator, args: argparse.Namespace, destination: str) -> dict[str, Any]:
    from airflow_provider_codat.company_progress import CompanySyncOptions
    from airflow_provider_codat.company_sync import CompanySync
    from airflow_provider_codat.hooks.codat import CodatHook
    from airflow_provider_codat.sync import interval
    from airflow_provider_codat.tables.batch import merge_types
    from airflow_provider_codat.values import CompanyId

    sim.op(
        "reset",
        companies=args.companies,
        records=args.records,
        sync_seconds=args.sync_seconds,
        requests_per_minute=1000,
    )
    connection(sim, DEFAULT_API_KEY)
    offset = [0.0]

    def now() -> float:
        return time.time() + offset[0]

    def sleep(seconds: float) -> None:
        offset[0] += seconds
        sim.op("advance", seconds=seconds)

    interval.CLOCK.now, interval.CLOCK.sleep = now, sleep  # waits cost their requests, not their minutes
    hook = CodatHook()
    companies = [CompanyId.parse(c["id"]) for c in sim.op("companies")]
    options = CompanySyncOptions(
        refresh="queue",
        include_deleted=True,
        full_refresh=False,
        page_size=1000,
        max_concurrency=10,
        poll_interval=30,
        max_poll_interval=600,
    )
    sim.op("reset_request_log")
    cpu0, sim_cpu0, wall0 = own_cpu(), sim.cpu_seconds(), time.monotonic()
    for i in range(0, len(companies), BATCH):
        batch = companies[i : i + BATCH]
        for company_id in batch:  # one task instance per company, as the daily DAG maps them
            sync = CompanySync.start(
                hook, [company_id], TYPES, destination, run_id="daily_1", timeout=6 * 3600, options=options
            )
            sync.refresh()
            sync.advance(deferrable=False)
        merge_types(
            data_types=TYPES, destination=destination, company_ids=[str(c) for c in batch], run_id="daily_1"
        )
    wall = time.monotonic() - wall0
    log = sim.op("request_log")
    return {
        "path": "polling",
        "companies": len(companies),
        "day_requests": by_endpoint(log),
        "task_instances": len(companies) + 3,
        "delta_commits": delta_commits(destination),
        "day_wall": wall,
        "simulated_wait_seconds": offset[0],
        "cpu": own_cpu() - cpu0,
        "sim_cpu": sim.cpu_seconds() - sim_cpu0,
    }


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        f"companies {args.companies}, records {args.records} per type and scope, window {args.window} s, "
        f"sync {args.sync_seconds} s, change fraction {args.change_fraction}"
    ]
    for result in results:
        n = result["companies"]
        day = result["day_requests"]
        lines.append(f"\n== {result['path']} path ==")
        per = {k: round(v / n, 2) for k, v in sorted(day.items())}
        lines.append(f"requests per company per day by endpoint: {per} (total {sum(day.values()) / n:.2f})")
        if result["path"] == "webhook":
            changed = result["companies_with_changes"] or 1
            lines.append(
                f"per company with changes ({result['companies_with_changes']} of {n}): "
                f"{sum(day.values()) / changed:.2f} requests "
                f"({', '.join(f'{k} {v / changed:.2f}' for k, v in sorted(day.items()))})"
            )
            sweep = result["sweep_requests"]
            lines.append(
                f"sweep: {dict(sweep)} for {n} companies ({sum(sweep.values()) / n:.3f} per company), "
                f"{result['suspects']} suspect companies, {result['sweep_seconds']:.1f} s, CPU {result['sweep_cpu']:.1f} s"
            )
            lines.append(
                f"set-up (once per company, not daily): {result['setup_requests'] / n:.1f} requests per company"
            )
            lines.append(
                f"deliveries {result['deliveries']}, windows run {result['windows']} "
                f"({result['windows_with_changes']} with changes), window processing p50 "
                f"{result['window_seconds_p50']:.2f} s, max {result['window_seconds_max']:.2f} s"
            )
            lines.append(
                f"latency sync completion -> merged (changed types: {result['latencies']}): p50 "
                f"{result['latency_p50'] / 60:.1f} min, p95 {result['latency_p95'] / 60:.1f} min"
            )
            lines.append(
                f"companies with changes: {result['companies_with_changes']}; failed: {result['failed']}"
            )
        else:
            lines.append(f"simulated waiting {result['simulated_wait_seconds'] / 60:.0f} min (clock moved)")
        lines.append(
            f"task instances {result['task_instances']}, Delta commits {result['delta_commits']}, wall "
            f"{result['day_wall']:.1f} s, CPU here {result['cpu']:.1f} s, simulator CPU {result['sim_cpu']:.1f} s"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--companies", type=int, default=50)
    parser.add_argument("--records", type=int, default=20)
    parser.add_argument("--window", type=int, default=300, help="simulated seconds per window")
    parser.add_argument("--sync-seconds", type=float, default=60.0)
    parser.add_argument("--change-fraction", type=float, default=0.5)
    parser.add_argument("--skip-polling", action="store_true")
    parser.add_argument("--json", help="write the raw results here")
    args = parser.parse_args()
    sim = Simulator(free_port())
    results = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-portfolio-") as folder:
            results.append(webhook_day(sim, args, f"file://{folder}/webhook"))
            if not args.skip_polling:
                results.append(polling_day(sim, args, f"file://{folder}/polling"))
    finally:
        sim.stop()
    print(report(results, args))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
