"""A triggerer's load: N ``CodatSyncTrigger.run()`` in one event loop, against a local HTTP server.

Every trigger waits for its own company's sync, and every sync takes ``--sync-seconds`` of real time (default
60). The triggers start together (``started_at`` = now: the task has just polled, as a deferring task does),
like a DAG run mapped over N companies. Reported:

* loop lag of a 50 ms ticker running in the same loop (p50, p99, max): how late the loop serves anyone;
* HTTP calls and TCP connections the server saw, sockets open in this process (peak), ``httpx.AsyncClient``s
  built;
* RSS added by the waits (peak during the run minus the level after a warm-up call), CPU seconds of this process;
* that each trigger fired exactly one event, ``success``, naming its own dataset;
* garbage-collector pauses (the longest, and how many full collections ran), and the objects each wait holds.

Before the measured waits, one wait runs to completion (the imports, the connection machinery) and the
collector runs once: the state of a triggerer that has been up for a while.

The server is a minimal ASGI app under uvicorn in a child process (so its CPU does not count as the loop's):
``dataStatus`` with 40 entries, as Codat answers, derived from the clock; idle connections kept 10 minutes.

    .venv/bin/python bench/trigger_scale.py                      # N = 1000, 60 s syncs, 3 rounds (~5 min)
    .venv/bin/python bench/trigger_scale.py --n 200 --rounds 1   # a quick look
    .venv/bin/python bench/trigger_scale.py --code /tmp/old      # another checkout's airflow_provider_codat

Targets at N = 1000, 60 s syncs: lag p99 < 100 ms and max < 500 ms; RSS added < 150 MB; at most 10
AsyncClients; connections reused across polls (far fewer connections than calls).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import statistics
import subprocess
import sys
import time
import uuid

NAMESPACE = uuid.UUID("6f1c1f57-3d52-4c4a-9f0e-0a8c3d1b2e77")
TYPES = [
    "invoices", "bills", "customers", "suppliers", "journalEntries", "journals", "payments", "billPayments",
    "creditNotes", "billCreditNotes", "taxRates", "items", "paymentMethods", "purchaseOrders", "salesOrders",
    "trackingCategories", "chartOfAccounts", "company", "balanceSheet", "profitAndLoss", "cashFlowStatement",
    "bankAccounts", "bankTransactions", "accountTransactions", "directCosts", "directIncomes", "transfers",
    "itemReceipts", "banking-accounts", "banking-transactions", "banking-accountBalances", "commerce-orders",
    "commerce-customers", "commerce-payments", "commerce-products", "commerce-transactions", "commerce-locations",
    "commerce-disputes", "commerce-companyInfo", "commerce-paymentMethods",
]  # fmt: skip
TICK = 0.05


def dataset_of(company_id: str) -> str:
    return str(uuid.uuid5(NAMESPACE, company_id))


# --- the server (child process) --------------------------------------------------------------------------------


def serve(sync_seconds: float, started: float) -> None:
    import socket

    import uvicorn

    calls = {"n": 0}
    peers: set = set()
    clock = {"started": started}

    def status(company_id: str) -> dict:
        done = time.time() >= clock["started"] + sync_seconds
        awaited, old = dataset_of(company_id), str(uuid.uuid5(NAMESPACE, "old" + company_id))
        body = {}
        for data_type in TYPES:
            ours = data_type == "invoices"
            body[data_type] = {
                "dataType": data_type,
                "currentStatus": "Complete" if done or not ours else "Fetching",
                "latestSyncId": awaited if ours else old,
                "latestSuccessfulSyncId": awaited if ours and done else old,
                "lastSuccessfulSync": "2026-11-26T10:00:00.0000000Z",
            }
        return body

    async def app(scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == "/_start":  # the syncs start now, and the counts from zero
            clock["started"] = time.time()
            calls["n"] = 0
            peers.clear()
            payload = b"{}"
        elif path == "/_count":
            payload = json.dumps({"calls": calls["n"], "connections": len(peers)}).encode()
        else:
            calls["n"] += 1
            peers.add(tuple(scope.get("client") or ()))
            parts = path.strip("/").split("/")
            payload = json.dumps(status(parts[1])).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    config = uvicorn.Config(
        app, log_level="critical", access_log=False, lifespan="off", timeout_keep_alive=600, backlog=4096
    )
    uvicorn.Server(config).run(sockets=[sock])


# --- the triggerer side ----------------------------------------------------------------------------------------


def _sockets() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor is gone by now
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class _Watch:
    """What the loop lives through while the waits run: its lag each tick, the peaks of RSS and sockets (once a
    second), and the interpreter's collections."""

    def __init__(self, rss_before: float) -> None:
        self.lags: list[float] = []
        self.peaks = {"rss": rss_before, "sockets": _sockets()}
        self.pauses: list[tuple[int, float]] = []
        self.finished = asyncio.Event()
        self._gc_started = 0.0

    async def tick(self) -> None:
        beat = 0
        while not self.finished.is_set():
            start = time.perf_counter()
            await asyncio.sleep(TICK)
            self.lags.append(time.perf_counter() - start - TICK)
            beat += 1
            if beat % 20 == 0:  # once a second
                self.peaks["rss"] = max(self.peaks["rss"], _rss_mb())
                self.peaks["sockets"] = max(self.peaks["sockets"], _sockets())

    def on_gc(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.pauses.append((info["generation"], time.perf_counter() - self._gc_started))

    def figures(self) -> dict:
        lags = sorted(self.lags)
        return {
            "lag_p50_ms": 1000 * lags[len(lags) // 2],
            "lag_p99_ms": 1000 * lags[min(len(lags) - 1, int(len(lags) * 0.99))],
            "lag_max_ms": 1000 * lags[-1],
            "gc_max_ms": 1000 * max((p for _, p in self.pauses), default=0.0),
            "gc_full": sum(1 for generation, _ in self.pauses if generation == 2),
        }


def _count_clients() -> dict:
    """Count the ``httpx.AsyncClient`` objects built from now on (``["n"]``)."""
    import httpx

    built = {"n": 0}
    original_init = httpx.AsyncClient.__init__

    def counting_init(self, *args, **kwargs):
        built["n"] += 1
        original_init(self, *args, **kwargs)

    httpx.AsyncClient.__init__ = counting_init
    return built


def _triggers(companies: list[str], deadline_in: float, started_ago: float = 0.0) -> list:
    from airflow_provider_codat.triggers.sync import CodatSyncTrigger

    now = time.time()
    return [
        CodatSyncTrigger(
            company_id=company_id,
            datasets={"invoices": dataset_of(company_id)},
            deadline=now + deadline_in,
            started_at=now - started_ago,
        )
        for company_id in companies
    ]


async def _events_of(trigger) -> list[dict]:
    return [event.payload async for event in trigger.run()]


def _correct_events(companies: list[str], results: list[list[dict]]) -> int:
    """Waits that fired exactly one success event naming their own company's dataset."""
    correct = 0
    for company_id, events in zip(companies, results, strict=True):
        if len(events) == 1 and events[0]["status"] == "success":
            outcome = events[0]["outcomes"].get("invoices", {})
            correct += outcome.get("dataset_id") == dataset_of(company_id)
    return correct


async def _run(n: int, base_url: str, sync_started: float) -> dict:
    import httpx

    built = _count_clients()
    companies = [str(uuid.uuid4()) for _ in range(n)]
    # Warm-up, as a triggerer that has already run a wait: the imports, the connection machinery, the first
    # client (then closed). Not part of what N waits add.
    await _events_of(_triggers(companies[:1], deadline_in=1, started_ago=60)[0])
    # A triggerer that has run for a while has collected its start-up garbage: start from there.
    gc.collect()
    objects_before = len(gc.get_objects())
    built["n"] = 0
    httpx.get(f"{base_url}/_start")
    rss_before, cpu_before = _rss_mb(), time.process_time()

    triggers = _triggers(companies, deadline_in=900)
    watch = _Watch(rss_before)
    gc.callbacks.append(watch.on_gc)
    ticking = asyncio.ensure_future(watch.tick())
    wall = time.monotonic()
    results = await asyncio.gather(*(_events_of(t) for t in triggers))
    wall = time.monotonic() - wall
    watch.finished.set()
    await ticking
    gc.callbacks.remove(watch.on_gc)
    watch.peaks["rss"] = max(watch.peaks["rss"], _rss_mb())
    cpu = time.process_time() - cpu_before
    objects_per_wait = (len(gc.get_objects()) - objects_before) / n  # the triggers still exist here
    server = httpx.get(f"{base_url}/_count").json()
    return {
        "n": n,
        **watch.figures(),
        "calls": server["calls"],
        "connections": server["connections"],
        "sockets_peak": watch.peaks["sockets"],
        "clients_built": built["n"],
        "rss_added_mb": watch.peaks["rss"] - rss_before,
        "cpu_s": cpu,
        "wall_s": wall,
        "correct_events": _correct_events(companies, results),
        "objects_per_wait": objects_per_wait,
        "objects_before": objects_before,
    }


def one_round(n: int, sync_seconds: float, code: str | None) -> dict:
    started = time.time()
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--sync-seconds", str(sync_seconds), "--started", str(started)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(server.stdout.readline())
        base_url = f"http://127.0.0.1:{port}"
        connection = {"conn_type": "codat", "host": base_url, "password": "bench-key"}
        env = {**os.environ, "AIRFLOW_CONN_CODAT_DEFAULT": json.dumps(connection)}
        if code:
            env["PYTHONPATH"] = code + os.pathsep + env.get("PYTHONPATH", "")
        child = subprocess.run(
            [
                sys.executable,
                __file__,
                "--client",
                "--n",
                str(n),
                "--base-url",
                base_url,
                "--started",
                str(started),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        if child.returncode != 0:
            raise SystemExit(child.stderr[-4000:])
        return json.loads(child.stdout.strip().splitlines()[-1])
    finally:
        server.terminate()
        server.wait(timeout=10)


COLUMNS = [
    ("lag_p50_ms", "lag p50 ms", "{:.1f}"),
    ("lag_p99_ms", "lag p99 ms", "{:.1f}"),
    ("lag_max_ms", "lag max ms", "{:.0f}"),
    ("calls", "calls", "{:.0f}"),
    ("connections", "conns", "{:.0f}"),
    ("sockets_peak", "sockets", "{:.0f}"),
    ("clients_built", "clients", "{:.0f}"),
    ("rss_added_mb", "RSS+ MB", "{:.0f}"),
    ("cpu_s", "CPU s", "{:.1f}"),
    ("wall_s", "wall s", "{:.0f}"),
    ("correct_events", "correct", "{:.0f}"),
    ("gc_max_ms", "GC max ms", "{:.0f}"),
    ("gc_full", "full GCs", "{:.0f}"),
    ("objects_per_wait", "objs/wait", "{:.0f}"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--sync-seconds", type=float, default=60.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--code", help="a directory holding another airflow_provider_codat to measure")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--started", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.sync_seconds, args.started)
        return
    if args.client:
        import structlog

        # What the waits log is not the point here; writing it would be (the triggerer ships it elsewhere).
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
        logging.disable(logging.WARNING)
        print(json.dumps(asyncio.run(_run(args.n, args.base_url, args.started))))
        return
    rows = [one_round(args.n, args.sync_seconds, args.code) for _ in range(args.rounds)]
    print(
        f"N = {args.n} triggers, {args.sync_seconds:.0f} s syncs, {args.rounds} round(s); median, then each round"
    )
    print("  ".join(f"{title:>10}" for _, title, _ in COLUMNS))
    median = {key: statistics.median(row[key] for row in rows) for key, _, _ in COLUMNS}
    for row in [median, *rows]:
        print("  ".join(f"{fmt.format(row[key]):>10}" for key, _, fmt in COLUMNS))


if __name__ == "__main__":
    main()
