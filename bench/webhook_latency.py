"""Webhooks, two figures: how fast a finished sync lands, and how much load the receiver takes.

1. ``latency``: `make airflow` (airflow standalone, SQLite, LocalExecutor) with the simulator's webhooks pointing
   at its receiver. Per round, a sync of one (company, data type) is queued on the simulator and finished
   (``advance``); the clock runs from that instant until the extract's files are on disk. API calls are counted
   from the simulator's request log over the same span. A first round warms the executor (reported, not in the
   median).
2. ``receiver``: the receiver app served by uvicorn on a free loopback port; an open-loop client sends signed
   ``read.completed`` deliveries at a fixed rate (each timed from its scheduled send, so queueing shows) for
   ``--seconds``, after one untimed second. ``--database postgres`` (the default): each delivery is stored
   before it is answered, as in production, in a Postgres of `make stack` (migrated, the DAGs serialised so the
   assets exist; the round runs in a child process with the stack's Airflow settings). ``--database none``: a
   store that only counts, to see the receiver's own cost. ``--drainer`` says who writes the asset events
   meanwhile: ``process`` (the drainer process the receiver starts, as in production), ``thread`` (a drainer
   thread in the receiver's process, the earlier design), ``after`` (nobody until the round is answered: the
   answer's path alone); several, comma-separated, are measured in turn, round by round, on one Postgres.

    .venv/bin/python bench/webhook_latency.py                 # both, 3 rounds each (about 5 minutes)
    .venv/bin/python bench/webhook_latency.py receiver --rate 400 --database none
    .venv/bin/python bench/webhook_latency.py receiver --rounds 3 --seconds 5 --drainer process,after,thread

Targets: sync completion -> records landed <= 30 s with 0 polls; 200 deliveries/s with p99 < 200 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
from standardwebhooks.webhooks import Webhook

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tools")]

from airflow_provider_codat.simulator.server import serve_in_thread  # noqa: E402
from airflow_provider_codat.webhooks.dedupe import RecentIds  # noqa: E402
from airflow_provider_codat.webhooks.drain import InboxDrainer  # noqa: E402
from airflow_provider_codat.webhooks.drainer_process import DrainerProcess  # noqa: E402
from airflow_provider_codat.webhooks.receiver import ReceiverParts, create_receiver_app  # noqa: E402
from airflow_provider_codat.webhooks.secret import CachedVerifier  # noqa: E402
from airflow_provider_codat.webhooks.store import Stored, store_delivery  # noqa: E402

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
COMPANY = "0498e921-9b53-4396-a412-4f2f5983b0a2"
LATENCY_TARGET, RATE_TARGET, P99_TARGET = 30.0, 200, 0.200
WARMUP_SECONDS = 1.0


# -- receiver throughput -------------------------------------------------------------------------------------
def _deliveries(count: int) -> list[tuple[bytes, dict[str, str]]]:
    """Signed deliveries, made before the clock starts (signing is the sender's cost, not the receiver's); ids
    of their own in every round (the database keeps the earlier rounds' ids)."""
    signer, now = Webhook(SECRET), datetime.now(tz=UTC)
    round_id = uuid.uuid4().hex[:12]
    made = []
    for number in range(count):
        body = json.dumps(
            {
                "id": f"00000000-0000-4000-8000-{number:012d}",
                "eventType": "read.completed",
                "generatedDate": now.isoformat(),
                "payload": {
                    "referenceCompany": {"id": COMPANY, "name": "Bluebell Bakery"},
                    "modifiedFromDate": now.isoformat(),
                    "dataTypes": [
                        {"dataType": key, "recordsModified": True, "status": "Complete", "connectionId": None}
                        for key in ("invoices", "payments", "bills")
                    ],
                },
            }
        )
        webhook_id = f"msg_bench_{round_id}_{number}"
        headers = {
            "webhook-id": webhook_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signer.sign(webhook_id, now, body),
            "content-type": "application/json",
        }
        made.append((body.encode(), headers))
    return made


def _request_bytes(path: str, host: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"host: {host}", f"content-length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    return status


async def _send_at_rate(
    base: str, deliveries, rate: float, connections: int
) -> tuple[list[float], list[int]]:
    """Open loop: request ``i`` is due at ``start + i / rate`` whatever happened before; its latency runs from
    then. A minimal HTTP/1.1 client on keep-alive connections, so the client costs little next to the server."""
    url = httpx.URL(base)
    requests = [
        _request_bytes("/webhooks", f"{url.host}:{url.port}", body, headers) for body, headers in deliveries
    ]
    due: asyncio.Queue[int | None] = asyncio.Queue()
    latencies: list[float] = []
    statuses: list[int] = []
    start = time.perf_counter() + 0.3

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(url.host, url.port)
        try:
            while (index := await due.get()) is not None:
                writer.write(requests[index])
                statuses.append(await _read_response(reader))
                latencies.append(time.perf_counter() - (start + index / rate))
        finally:
            writer.close()

    workers = [asyncio.create_task(connection()) for _ in range(connections)]
    for index in range(len(requests)):
        await asyncio.sleep(max(0.0, start + index / rate - time.perf_counter()))
        due.put_nowait(index)
    for _ in workers:
        due.put_nowait(None)
    await asyncio.gather(*workers)
    return latencies, statuses


def receiver_round(rate: float, seconds: float, database: bool, drainer_mode: str = "process") -> dict:
    """One round in this process; ``database``: the real store (Airflow's settings come from the
    environment), else a store that only counts; ``drainer_mode``: ``process`` (as in production: the
    drainer process the receiver starts writes the asset events while deliveries arrive), ``thread`` (the
    earlier design: a drainer thread in this process), ``after`` (only once the round's deliveries are
    answered: the answer's path alone)."""
    written = []

    def counting_store(delivery) -> Stored:
        written.append(len(delivery.notices))
        return Stored(duplicate=False)

    drainer = {"process": DrainerProcess, "thread": InboxDrainer}.get(drainer_mode) if database else None
    drainer = drainer() if drainer is not None else None
    parts = ReceiverParts(
        verifier=CachedVerifier(lookup=lambda conn_id: SECRET),
        seen=RecentIds(),
        store=store_delivery if database else counting_store,
        drainer=drainer,
    )
    server, thread, base = serve_in_thread(create_receiver_app(parts))
    try:
        deliveries = _deliveries(int(rate * (seconds + WARMUP_SECONDS)))
        warmup = int(rate * WARMUP_SECONDS)
        # The first second warms the server's code paths and connections (a server that just started); not timed.
        asyncio.run(_send_at_rate(base, deliveries[:warmup], rate, connections=16))
        if drainer is not None:  # timed only once the drainer is at work (a process imports Airflow first)
            _wait_draining(warmup)
        deliveries = deliveries[warmup:]
        latencies, statuses = asyncio.run(_send_at_rate(base, deliveries, rate, connections=16))
        sent_at = time.monotonic()
        after = InboxDrainer()
        while database and _undrained():
            if isinstance(drainer, DrainerProcess):
                drainer.wake()
            else:
                after.drain_all()
            time.sleep(0.2)
        drained = time.monotonic() - sent_at
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        if isinstance(drainer, DrainerProcess):
            drainer.stop()
    latencies.sort()
    return {
        "sent": len(deliveries),
        "ok": statuses.count(200),
        "stored": statuses.count(200),
        "events": _events_written() if database else sum(written[warmup:]),
        "drained_after_s": drained,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99) - 1],
        "max_ms": 1000 * latencies[-1],
    }


def _wait_draining(stored: int, timeout: float = 300) -> None:
    """Until the drainer has drained some of the ``stored`` rows of this round's warm-up."""
    deadline = time.monotonic() + timeout
    while _undrained() >= stored:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the drainer drained nothing within {timeout} s")
        time.sleep(0.05)


def _undrained() -> int:
    """Inbox rows not yet drained (by any drainer of this process)."""
    from sqlalchemy import func, select

    from airflow_provider_codat.webhooks.inbox import INBOX
    from airflow_provider_codat.webhooks.store import TABLE

    with TABLE.engine().connect() as connection:
        return connection.scalar(select(func.count()).where(INBOX.c.processed_at.is_(None)))


def _events_written() -> int:
    """Asset events the drainers wrote, over every round on this database."""
    from sqlalchemy import func, select

    from airflow_provider_codat.webhooks.inbox import INBOX
    from airflow_provider_codat.webhooks.store import TABLE

    with TABLE.engine().connect() as connection:
        return connection.scalar(select(func.sum(INBOX.c.asset_events)))


def receiver_rounds_on_postgres(
    rate: float, seconds: float, rounds: int, drainer_modes: list[str]
) -> list[dict]:
    """Rounds against a Postgres of `make stack` (no Airflow process but the rounds' own), each in a child
    process that has the stack's Airflow settings; ``rounds`` of each of ``drainer_modes``, in turn."""
    import shutil
    import subprocess

    from local_airflow import AIRFLOW
    from stack import Stack

    root = Path(tempfile.mkdtemp(prefix="codat-webhook-bench-"))
    root.chmod(0o755)  # Postgres runs as the postgres user when this is root
    stack = Stack(root=root, companies=1, records=1, components=())
    try:
        stack.start(timeout=300)
        subprocess.run([AIRFLOW, "dags", "reserialize"], env=stack.env(), capture_output=True, check=True)
        rows = []
        for _ in range(rounds):
            for mode in drainer_modes:  # interleaved: each mode meets the same load on the machine
                child = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "receiver-round",
                        "--rate",
                        str(rate),
                        "--seconds",
                        str(seconds),
                    ]
                    + ["--drainer", mode],
                    env=stack.env(),
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if child.returncode != 0:
                    raise RuntimeError(child.stderr[-3000:])
                rows.append({"mode": mode, **json.loads(child.stdout.strip().splitlines()[-1])})
        return rows
    finally:
        stack.stop()
        shutil.rmtree(root, ignore_errors=True)


# -- end-to-end latency in airflow standalone ---------------------------------------------------------------
def latency_rounds(rounds: int) -> list[dict]:
    from local_airflow import read_run_files

    from airflow_provider_codat.simulator import SimulatorState, run_in_thread
    from tests.e2e.standalone import free_port, make_airflow, wait_until_healthy

    port = free_port()
    simulator = run_in_thread(SimulatorState(companies=3, records=20, sync_seconds=600))
    control = simulator.control
    control.configure_webhooks(f"http://127.0.0.1:{port}/codat/webhooks")
    results = []
    with tempfile.TemporaryDirectory(prefix="codat-webhook-bench-") as home:
        destination = Path(home) / "codat-data"
        with make_airflow(Path(home), port, simulator.connection_json, "bench-webhooks.log") as (
            base,
            proc,
            log,
        ):
            api = httpx.Client(base_url=base + "/api/v2", timeout=30)
            wait_until_healthy(api, proc, log, "codat_on_change")
            api.patch("/dags/codat_on_change", json={"is_paused": False}).raise_for_status()
            company_id = control.linked_company_ids()[0]
            types = ["invoices", "payments", "bills", "creditNotes", "billPayments", "bankAccounts"]
            for data_type in types[: rounds + 1]:
                httpx.post(
                    f"{simulator.base_url}/companies/{company_id}/data/queue/{data_type}",
                    headers=simulator.auth_header,
                ).raise_for_status()
                control.reset_request_log()
                started = time.monotonic()
                control.advance(600)  # the sync completes now
                deadline = started + 300
                while (company_id, data_type) not in read_run_files(destination):
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise RuntimeError(f"{data_type} did not land; see {log}")
                    time.sleep(0.1)
                landed = time.monotonic() - started
                paths = [entry["path"] for entry in control.request_log()]
                results.append(
                    {
                        "data_type": data_type,
                        "seconds": landed,
                        "dataStatus": sum("dataStatus" in p for p in paths),
                        "polls": sum(("/data/history" in p or "/data/queue" in p) for p in paths),
                        "reads": sum(p.endswith(f"/{data_type}") for p in paths),
                    }
                )
                results[-1]["warmup"] = len(results) == 1
                label = (
                    " (warm-up: the first task processes start cold; not in the median)"
                    * results[-1]["warmup"]
                )
                print(f"  {data_type}: landed {landed:.1f} s after the sync completed{label}", flush=True)
                _wait_idle(api)
    simulator.stop()
    return results


def _wait_idle(api: httpx.Client) -> None:
    """Let the round's run finish (max_active_runs=1) so the next round starts on an idle DAG."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        runs = api.get("/dags/codat_on_change/dagRuns").json()["dag_runs"]
        if all(run["state"] in ("success", "failed") for run in runs):
            return
        time.sleep(0.5)


def _print_receiver_rows(rows: list[dict], rate: float, database: str) -> None:
    for row in rows:
        print(
            f"receiver round, drainer {row['mode']} ({database}): {row['sent']} sent at {rate:.0f}/s, "
            f"{row['ok']} answered 200, {row['events']} asset events in the database (all rounds; all written "
            f"{row['drained_after_s']:.1f} s after the last send); p50 {row['p50_ms']:.1f} ms, "
            f"p99 {row['p99_ms']:.1f} ms, max {row['max_ms']:.1f} ms",
            flush=True,
        )
    for mode in dict.fromkeys(row["mode"] for row in rows):
        mine = [row for row in rows if row["mode"] == mode]
        p99 = statistics.median(row["p99_ms"] for row in mine)
        p50 = statistics.median(row["p50_ms"] for row in mine)
        print(
            f"receiver at {rate:.0f}/s, drainer {mode}: median of {len(mine)} p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
            f"max {max(row['max_ms'] for row in mine):.1f} ms, drained {statistics.median(row['drained_after_s'] for row in mine):.1f} s "
            f"after the last send (target p99 < {P99_TARGET * 1000:.0f} ms: "
            f"{'met' if p99 < P99_TARGET * 1000 else 'MISSED'})"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", nargs="*", help="receiver and/or latency (default: both)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=RATE_TARGET, help="deliveries a second")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of load per receiver round")
    parser.add_argument(
        "--database", choices=("postgres", "none"), default="postgres", help="receiver's store"
    )
    parser.add_argument(
        "--drainer",
        default="process",
        help="comma-separated, measured in turn in one session: process (the drainer process, as in "
        "production), thread (a drainer thread in the receiver's process: the earlier design), after (asset "
        "events written after the round: the answer's path alone)",
    )
    parser.add_argument("--drain-after", action="store_true", help="the same as --drainer after")
    args = parser.parse_args(argv)
    modes = ["after"] if args.drain_after else args.drainer.split(",")
    if set(modes) - {"process", "thread", "after"}:
        parser.error("--drainer takes process, thread and/or after")
    if args.what == ["receiver-round"]:  # the child of receiver_rounds_on_postgres
        print(json.dumps(receiver_round(args.rate, args.seconds, database=True, drainer_mode=modes[0])))
        return 0
    what = args.what or ["receiver", "latency"]
    if set(what) - {"receiver", "latency"}:
        parser.error("say receiver and/or latency")
    if "receiver" in what:
        if args.database == "postgres":
            rows = receiver_rounds_on_postgres(args.rate, args.seconds, args.rounds, modes)
        else:
            rows = [
                {"mode": "none", **receiver_round(args.rate, args.seconds, database=False)}
                for _ in range(args.rounds)
            ]
        _print_receiver_rows(rows, args.rate, args.database)
    if "latency" in what:
        rows = latency_rounds(args.rounds)
        median = statistics.median(row["seconds"] for row in rows if not row["warmup"])
        for row in rows:
            print(
                f"latency {row['data_type']}: {row['seconds']:.1f} s; API calls on the path: "
                f"{row['dataStatus']} dataStatus, {row['polls']} queue/history, {row['reads']} reads of the type"
            )
        print(
            f"sync completed -> records landed: median {median:.1f} s over {len(rows) - 1} rounds "
            f"(target <= {LATENCY_TARGET:.0f} s: {'met' if median <= LATENCY_TARGET else 'MISSED'})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
