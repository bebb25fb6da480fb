"""The health page at portfolio scale: 10,000 companies × 9 data types, on SQLite and on Postgres, side by side.

    .venv/bin/python bench/health_page.py [--companies 10000] [--calls 40] [--rounds 3] [--backends sqlite,postgres]
    .venv/bin/python bench/health_page.py --chromium      # also the first paint in headless Chromium
    .venv/bin/python bench/health_page.py --dags 3        # the types spread over the hourly, daily, weekly DAGs
    .venv/bin/python bench/health_page.py --grouped       # plus a removed DAG's rows: the grouped path for all

For each backend, a worker process (its own ``AIRFLOW_HOME`` in a temp folder; for Postgres a throwaway cluster
started with ``initdb``/``pg_ctl`` as ``tools/stack.py`` does, stopped at the end) migrates a fresh Airflow
database, registers the DAGs, and records the portfolio as the fold does, 500 companies a report: every type
landed, one company in 50 with a failed type, one in 20 landed three days ago (stale), one in 100 with a
deauthorized connection. Then, through Airflow's own API server app in-process (``create_app``, the provider's
app mounted from its entry point, the simple auth manager, an admin's token as the ``_token`` cookie):

* data call: ``GET /codat/health/data`` with varied filters, sorts, searches and pages, ``--calls`` a round;
* first paint (server side): ``GET /codat/health`` (the shell) then ``GET /codat/health/fragment`` (the figures,
  the charts and the first 50 companies): what the browser needs before it paints the list;
* with ``--chromium``: the same page served by uvicorn, loaded in headless Chromium with the cookie set, until
  the list's first row is in the DOM (``performance.now()`` when WebDriver, looking every 10 ms, sees it).

Each round's median and p95; the table gives the median of the rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: The sync DAGs and their schedules: with ``--dags 3`` the types are spread over them (hourly: invoices and
#: payments, daily: five more, weekly: the rest), as the example DAGs do, so a company has a list row per DAG.
DAGS = {"codat_sync_daily": "@daily", "codat_sync_hourly": "@hourly", "codat_sync_weekly": "@weekly"}
DAG_ID = "codat_sync_daily"
TYPES = [
    "invoices",
    "payments",
    "bills",
    "billPayments",
    "customers",
    "suppliers",
    "accounts",
    "journalEntries",
    "creditNotes",
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--companies", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--chromium", action="store_true")
    parser.add_argument("--dags", type=int, default=1, choices=(1, 2, 3), help="sync DAGs sharing the types")
    parser.add_argument(
        "--grouped",
        action="store_true",
        help="also a report of a DAG Airflow does not know: every user reads the rows per DAG, grouped",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # a backend's URL: run as its worker
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(_worker(args)))
        return
    results = {}
    with tempfile.TemporaryDirectory(prefix="health-bench-") as folder:
        os.chmod(folder, 0o755)  # Postgres runs as its own user when this is root
        for backend in args.backends.split(","):
            with _database(backend, Path(folder)) as url:
                results[backend] = _run_worker(args, url, Path(folder) / backend)
    _print_table(args, results)


def _run_worker(args: argparse.Namespace, url: str, home: Path) -> dict:
    home.mkdir(parents=True, exist_ok=True)
    env = dict(
        os.environ,
        AIRFLOW_HOME=str(home),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=url,
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="admin:admin",
        AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
        AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_urlsafe(48),
        AIRFLOW__LOGGING__LOGGING_LEVEL="WARNING",
    )
    command = [sys.executable, __file__, "--worker", url, "--companies", str(args.companies)]
    command += ["--calls", str(args.calls), "--rounds", str(args.rounds), "--dags", str(args.dags)]
    command += ["--chromium"] * args.chromium + ["--grouped"] * args.grouped
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(
            f"the {url.split(':')[0]} worker failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
        )
    return json.loads(done.stdout.strip().splitlines()[-1])


class _database:
    """The backend's SQLAlchemy URL: a file for SQLite, a throwaway cluster for Postgres."""

    def __init__(self, backend: str, folder: Path) -> None:
        self.backend, self.folder = backend, folder

    def __enter__(self) -> str:
        if self.backend == "sqlite":
            return f"sqlite:///{self.folder / 'airflow.db'}"
        sys.path.insert(0, str(ROOT / "tools"))
        from postgres_cluster import start_cluster
        from processes import free_ports

        port = free_ports(["port"])["port"]
        logs = self.folder / "pg-logs"
        logs.mkdir(exist_ok=True)
        os.chmod(logs, 0o777)
        password = secrets.token_urlsafe(16)
        start_cluster(
            self.folder / "pgdata", port=port, user="bench", password=password, database="airflow", logs=logs
        )
        return f"postgresql+psycopg2://bench:{password}@127.0.0.1:{port}/airflow"

    def __exit__(self, *exc: object) -> None:
        if self.backend != "sqlite":
            from postgres_cluster import stop_cluster

            stop_cluster(self.folder / "pgdata")


def _worker(args: argparse.Namespace) -> dict:
    from airflow.utils.db import upgradedb

    started = time.perf_counter()
    upgradedb()
    migrated = time.perf_counter() - started
    started = time.perf_counter()
    _record(args.companies, args.dags, grouped=args.grouped)
    recorded = time.perf_counter() - started
    client, cookie = _client()
    asks = [
        {"filter": f, "sort": s, "page": p, "search": q}
        for f, s, p, q in [
            ("all", "state", 1, ""),
            ("stale", "oldest", 2, ""),
            ("failed", "error", 1, ""),
            ("all", "name", 37, ""),
            ("broken", "state", 1, ""),
            ("all", "state", 1, "company 12"),
            ("all", "oldest", 200, ""),
            ("stale", "name", 1, "99"),
        ]
    ]
    rounds = []
    for _ in range(args.rounds):
        data, paint, size = [], [], 0
        for call in range(args.calls):
            begun = time.perf_counter()
            answer = client.get("/codat/health/data", params=asks[call % len(asks)])
            data.append((time.perf_counter() - begun) * 1000)
            assert answer.status_code == 200, answer.text[:500]
        for _ in range(max(5, args.calls // 4)):
            begun = time.perf_counter()
            shell = client.get("/codat/health")
            first = client.get("/codat/health/fragment", params={"page": 1})
            paint.append((time.perf_counter() - begun) * 1000)
            assert shell.status_code == first.status_code == 200 and "data-company=" in first.text
            size = len(shell.content) + len(first.content)
        rounds.append({"data": _stats(data), "paint": _stats(paint), "bytes": size})
    result = {"migrate_s": migrated, "record_s": recorded, "rounds": rounds}
    if args.chromium:
        result["chromium"] = _chromium_paint(client.app, cookie, args.rounds)
    import airflow

    result["airflow"] = airflow.__version__
    everything = client.get("/codat/health/data").json()
    result["matching"], result["states"] = everything["matching"], everything["states"]
    return result


def _stats(timings: list[float]) -> dict:
    ordered = sorted(timings)
    return {"median": statistics.median(ordered), "p95": ordered[max(0, int(len(ordered) * 0.95) - 1)]}


def _dag_of(data_type: str, dags: int) -> str:
    """The DAG that syncs ``data_type``: hourly the first two types, weekly the last two, daily the rest."""
    index = TYPES.index(data_type)
    slot = 1 if index < 2 else (2 if index >= 7 else 0)
    return list(DAGS)[slot if slot < dags else 0]


def _record(companies: int, dags: int = 1, *, grouped: bool = False) -> None:
    from airflow.models.dag import DagModel
    from airflow.models.dagbundle import DagBundleModel
    from airflow.utils.session import create_session

    from airflow_provider_codat.health.record import apply_report, record_connection
    from airflow_provider_codat.health.schema import TABLES

    with create_session() as session:
        session.merge(DagBundleModel(name="bench"))
        session.flush()
        for dag_id, schedule in DAGS.items():
            session.merge(DagModel(dag_id=dag_id, bundle_name="bench", timetable_summary=schedule))
    engine = TABLES.engine()
    now = datetime.now(tz=UTC)
    ids = [str(uuid.UUID(int=n + 1, version=4)) for n in range(companies)]
    for stale in (True, False):
        for start in range(0, len(ids), 500):
            chosen = [(n, c) for n, c in enumerate(ids[start : start + 500], start) if (n % 20 == 0) == stale]
            for dag_id in list(DAGS)[:dags]:
                report = {
                    "dag_id": dag_id,
                    "run_id": "scheduled__bench_old" if stale else "scheduled__bench",
                    "task_id": "codat_sync.sync",
                    "companies": {
                        c: {
                            "name": f"Company {n}",
                            "types": {t: e for t, e in _types(n).items() if _dag_of(t, dags) == dag_id},
                        }
                        for n, c in chosen
                    },
                    "minutes": {str(int(now.timestamp() // 60) - m): 40 for m in range(0, 24 * 60, 7)},
                }
                with engine.begin() as connection:
                    apply_report(connection, report, at=now - timedelta(days=3) if stale else now)
    if grouped:  # ten companies' invoices last synced by a DAG since removed from Airflow
        removed = {"dag_id": "codat_sync_removed", "run_id": "manual__old", "task_id": "sync"}
        removed["companies"] = {
            c: {"name": None, "types": {"invoices": {"status": "extracted"}}} for c in ids[:10]
        }
        with engine.begin() as connection:
            apply_report(connection, removed, at=now)
    with engine.begin() as connection:
        for n in range(0, companies, 100):
            record_connection(
                connection,
                {
                    "company_id": ids[n],
                    "connection_id": ids[-n - 1],
                    "platform": "Xero",
                    "status": "Deauthorized",
                },
                at=now,
            )


def _types(n: int) -> dict:
    return {
        t: (
            {"status": "failed", "error": "sync FetchError: the platform timed out"}
            if n % 50 == 1 and t == "payments"
            else {"status": "extracted", "records": 10 + n % 7, "synced_at": datetime.now(tz=UTC).isoformat()}
        )
        for t in TYPES
    }


def _client():
    from airflow.api_fastapi.app import create_app, get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    client = TestClient(create_app(apps="core"))
    token = get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"))
    client.cookies.set("_token", token)
    return client, token


def _chromium_paint(app, token: str, rounds: int) -> dict:
    """The page in headless Chromium from uvicorn in a thread: navigation start to the first company row."""
    import shutil
    import threading

    import uvicorn
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    sys.path.insert(0, str(ROOT / "tools"))
    from processes import free_ports

    port = free_ports(["port"])["port"]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    options = Options()
    options.binary_location = shutil.which("chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    timings = []
    try:
        driver.get(f"http://127.0.0.1:{port}/codat/health-missing")
        driver.add_cookie({"name": "_token", "value": token, "path": "/"})
        for _ in range(rounds * 3):
            driver.get(f"http://127.0.0.1:{port}/codat/health")
            WebDriverWait(driver, 30, poll_frequency=0.01).until(
                lambda d: d.execute_script("return !!document.querySelector('tr[data-company]')")
            )
            timings.append(driver.execute_script("return performance.now()"))
    finally:
        driver.quit()
        server.should_exit = True
    return _stats(timings)


def _print_table(args: argparse.Namespace, results: dict) -> None:
    def mid(backend: str, part: str, figure: str) -> float:
        return statistics.median(r[part][figure] for r in results[backend]["rounds"])

    print(
        f"{args.companies} companies x {len(TYPES)} types over {args.dags} DAG(s)"
        f"{', rows per DAG grouped' if args.grouped else ''}, {args.rounds} rounds of {args.calls} data calls"
    )
    print(
        "| backend | data call median | data call p95 | first paint (server) median | p95 | HTML | chromium |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for backend, found in results.items():
        browser = found.get("chromium")
        painted = f"{browser['median']:.0f} ms" if browser else "-"
        print(
            f"| {backend} | {mid(backend, 'data', 'median'):.0f} ms | {mid(backend, 'data', 'p95'):.0f} ms "
            f"| {mid(backend, 'paint', 'median'):.0f} ms | {mid(backend, 'paint', 'p95'):.0f} ms "
            f"| {found['rounds'][0]['bytes'] // 1024} KB "
            f"| {painted} |"
        )
    for backend, found in results.items():
        rounds = " / ".join(f"{r['data']['median']:.0f}-{r['data']['p95']:.0f}" for r in found["rounds"])
        print(
            f"{backend}: Airflow {found['airflow']}, migrated in {found['migrate_s']:.0f} s, recorded in "
            f"{found['record_s']:.1f} s, {found['matching']} companies listed {found['states']}; data call "
            "median-p95 per round "
            f"{rounds} ms"
        )


if __name__ == "__main__":
    main()
