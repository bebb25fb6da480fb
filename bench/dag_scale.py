"""Portfolio scale: `airflow dags test codat_sync_daily` against the simulator at 100 and 1,100 companies.

Prints, per run: the task instances of the run, the Codat API calls per synced company by kind (``queue``,
``dataStatus``, ``history``, ``connections``, ``read``), the run-level calls (the company listing), and the wall
time of ``airflow dags test``. Each type of each company fits in one page (``--records`` 20), so the calls
measure the DAG's structure, not the data's size. Syncs complete at once (``--sync-seconds 0``): the wait costs
its first look, and the wall time measures Airflow and the provider, not Codat.

The simulator runs in this process; Airflow runs on SQLite in a temporary home, on Airflow's default settings
(``max_map_length`` 1,024, ``max_active_tasks_per_dag`` 16 ...). Give ``--source DIR`` to time another checkout
of the provider (e.g. ``git archive <commit> | tar -x -C DIR``): it goes first on the ``PYTHONPATH`` of Airflow.

    .venv/bin/python bench/dag_scale.py                          # 100 companies, 3 rounds; then 1,100, 1 round
    .venv/bin/python bench/dag_scale.py --companies 100 --rounds 3 --source /tmp/before

Targets (100 companies, 9 types): at most 1 task instance per company + 20 for the run; at most 25 API calls
per company when each type fits in one page. 1,100 companies succeed on default settings.
"""

from __future__ import annotations

import argparse
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

from local_airflow import DAGS_FOLDER, airflow_env, run_airflow

from airflow_provider_codat.simulator import SimulatorState, run_in_thread

DAG_ID = "codat_sync_daily"
_COMPANY_PATH = re.compile(r"^/companies/(?P<company>[0-9a-f-]{36})(?P<rest>/.*)?$")


def kind_of(path: str) -> tuple[str | None, str]:
    """(company id or None, kind) of one API request."""
    match = _COMPANY_PATH.match(path)
    if match is None:
        return None, "companies"
    rest = match.group("rest") or ""
    if rest == "/dataStatus":
        kind = "dataStatus"
    elif rest.startswith("/data/queue/") or rest == "/data/all":
        kind = "queue"
    elif rest.startswith("/data/history"):
        kind = "history"
    elif rest.endswith("/connections"):
        kind = "connections"
    else:
        kind = "read"
    return match.group("company"), kind


def one_run(args, home: Path, simulator, number: int) -> dict:
    destination = home / "codat-data"
    extra = {}
    if args.source:
        source = args.source.resolve()
        extra = {"PYTHONPATH": str(source), "AIRFLOW__CORE__DAGS_FOLDER": str(source / "dags")}
    env = airflow_env(
        home, connection_json=simulator.connection_json, destination=destination, poke_interval=1, extra=extra
    )
    simulator.control.reset_request_log()
    log_file = home / "logs" / f"dags-test-{args.companies}-{number}.log"
    started = time.monotonic()
    proc = run_airflow("dags", "test", DAG_ID, env=env, log_file=log_file, timeout=args.timeout)
    seconds = time.monotonic() - started
    with sqlite3.connect(home / "airflow.db") as db:
        run_id = db.execute(
            "select run_id from dag_run where dag_id = ? order by id desc limit 1", (DAG_ID,)
        ).fetchone()[0]
        states = Counter(
            state
            for (state,) in db.execute(
                "select state from task_instance where dag_id = ? and run_id = ?", (DAG_ID, run_id)
            )
        )
    per_company: Counter = Counter()
    run_level: Counter = Counter()
    companies = set()
    for request in simulator.control.request_log():
        company, kind = kind_of(request["path"])
        if company is None:
            run_level[kind] += 1
        else:
            companies.add(company)
            per_company[kind] += 1
    return {
        "ok": proc.returncode == 0,
        "log": log_file,
        "seconds": seconds,
        "task_instances": sum(states.values()),
        "states": dict(states),
        "companies": len(companies),
        "per_company": {k: v / max(1, len(companies)) for k, v in sorted(per_company.items())},
        "run_level": dict(run_level),
    }


def bench(args) -> list[dict]:
    state = SimulatorState(companies=args.companies, records=args.records, sync_seconds=args.sync_seconds)
    results = []
    with tempfile.TemporaryDirectory(prefix="codat-dag-scale-") as tmp, run_in_thread(state) as simulator:
        home = Path(tmp)
        env = airflow_env(home, connection_json=simulator.connection_json, destination=home / "codat-data")
        if run_airflow("db", "migrate", env=env, log_file=home / "logs" / "migrate.log").returncode != 0:
            raise SystemExit("airflow db migrate failed")
        for number in range(1, args.rounds + 1):
            result = one_run(args, home, simulator, number)
            results.append(result)
            calls = sum(result["per_company"].values())
            print(
                f"  round {number}: {'ok' if result['ok'] else 'FAILED'} in {result['seconds']:.0f} s, "
                f"{result['task_instances']} task instances {result['states']}, {result['companies']} companies "
                f"synced, {calls:.1f} calls per company "
                + ", ".join(f"{k} {v:.2f}" for k, v in result["per_company"].items())
                + f"; run-level {result['run_level']}",
                flush=True,
            )
            if not result["ok"]:
                print(f"  see {result['log']}", flush=True)
                log_copy = Path(tempfile.gettempdir()) / result["log"].name
                log_copy.write_text(result["log"].read_text())
                print(f"  (copied to {log_copy})", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--companies", type=int, nargs="+", default=None, help="default: 100 then 1100")
    parser.add_argument("--rounds", type=int, default=None, help="default: 3 at 100 companies, 1 above")
    parser.add_argument("--records", type=int, default=20, help="records per type per company")
    parser.add_argument("--sync-seconds", type=float, default=0.0)
    parser.add_argument("--timeout", type=float, default=7200)
    parser.add_argument("--source", type=Path, default=None, help="another checkout of the provider to time")
    args = parser.parse_args(argv)
    print(f"DAGs folder: {args.source / 'dags' if args.source else DAGS_FOLDER}")
    failed = False
    for companies in args.companies or [100, 1100]:
        rounds = args.rounds or (3 if companies <= 100 else 1)
        print(f"{companies} companies, {rounds} rounds:", flush=True)
        run_args = argparse.Namespace(**{**vars(args), "companies": companies, "rounds": rounds})
        results = bench(run_args)
        ok = [r for r in results if r["ok"]]
        failed |= len(ok) != len(results)
        if ok:
            print(
                f"  median wall time {statistics.median(r['seconds'] for r in ok):.0f} s over {len(ok)} rounds; "
                f"{ok[0]['task_instances']} task instances for {ok[0]['companies']} companies",
                flush=True,
            )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
