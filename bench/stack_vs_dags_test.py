"""What a run of the daily DAG costs on the production topology (`make stack`: Celery, Postgres, Redis, a
separate triggerer) beside the same run in `airflow dags test` (one process, SQLite).

For each company count: wall time of the run (the DAG run's start to end), task instances, wall seconds per
task instance, and the mean duration of a task instance. (The time from queued to running is not reported: a
task that deferred is queued again on resuming, after its first start.) The simulator's syncs take 2 s and each
type holds 20 records per company, so the figures are mostly Airflow's cost, not Codat's.

    .venv/bin/python bench/stack_vs_dags_test.py                       # 50 and 200 companies, both executors
    .venv/bin/python bench/stack_vs_dags_test.py --companies 20 50 --skip-dags-test
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from stack_setup import DAG_ID, DAGS_FOLDER, RECORDS, SYNC_SECONDS, Stack, control


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def _summary(wall: float, durations: list[float | None]) -> dict:
    """``durations``: the recorded duration of each task instance (``None`` for one that did not run)."""
    ran = [d for d in durations if d is not None]
    return {
        "wall_s": round(wall, 1),
        "task_instances": len(durations),
        "wall_per_ti_s": round(wall / max(len(durations), 1), 2),
        "ti_duration_s": round(statistics.mean(ran), 2) if ran else None,
    }


def bench_stack(stack: Stack, company_ids: list[str], timeout: float) -> dict:
    api = stack.api()
    response = api.post(
        f"/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": {"company_ids": company_ids}}
    )
    response.raise_for_status()
    run_id = response.json()["dag_run_id"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = api.get(f"/dags/{DAG_ID}/dagRuns/{run_id}").json()
        if run["state"] in ("success", "failed"):
            break
        time.sleep(5)
    else:
        raise SystemExit(f"{run_id} did not finish within {timeout:.0f} s")
    tis = Stack.task_instances(api, DAG_ID, run_id)
    result = _summary(_seconds(run["start_date"], run["end_date"]), [ti["duration"] for ti in tis])
    result["state"] = run["state"]
    return result


def bench_dags_test(stack: Stack, company_ids: list[str], timeout: float) -> dict:
    """The same run in ``airflow dags test`` on SQLite, against the stack's simulator."""
    from tests.airflow_cli import AirflowCLI

    with tempfile.TemporaryDirectory(prefix="codat-bench-dags-test-") as home:
        cli = AirflowCLI.create(Path(home) / "airflow")
        env = stack.env()
        extra = {key: env[key] for key in ("AIRFLOW_CONN_CODAT_DEFAULT", "CODAT_SYNC_POKE_INTERVAL")}
        started = time.monotonic()
        result = cli.dags_test(
            DAG_ID,
            dags_folder=DAGS_FOLDER,
            conf={"company_ids": company_ids, "destination": str(Path(home) / "codat-data")},
            extra_env=extra,
            timeout=timeout,
        )
        wall = time.monotonic() - started
        with sqlite3.connect(cli.db_path) as conn:
            rows = conn.execute(
                "select duration from task_instance where dag_id = ? and run_id = ?",
                (DAG_ID, result.run_id),
            ).fetchall()
        summary = _summary(wall, [duration for (duration,) in rows])
        summary["state"] = "success" if result.returncode == 0 else "failed"
        return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--companies", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--skip-dags-test", action="store_true")
    parser.add_argument("--timeout", type=float, default=4 * 3600, help="per run")
    args = parser.parse_args(argv)

    root = Path(tempfile.mkdtemp(prefix="codat-bench-stack-"))
    root.chmod(0o755)  # Postgres runs as the postgres user when this is root
    stack = Stack(
        root=root,
        companies=max(args.companies) + 1,  # the simulator leaves one company deauthorized
        sync_seconds=SYNC_SECONDS,
        records=RECORDS,
        overrides={"AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "false"},
    )
    results = []
    try:
        stack.start(timeout=300)
        print(f"stack started: {stack.timings}", flush=True)
        api = stack.api()
        while api.get(f"/dags/{DAG_ID}").status_code != 200:
            time.sleep(2)
        api.patch(f"/dags/{DAG_ID}", json={"is_paused": False}).raise_for_status()
        linked = control(stack.simulator_url, "linked_company_ids")
        for count in args.companies:
            company_ids = linked[:count]
            row = {"companies": len(company_ids), "executor": "Celery (stack)"}
            row.update(bench_stack(stack, company_ids, args.timeout))
            print(json.dumps(row), flush=True)
            results.append(row)
            if not args.skip_dags_test:
                row = {"companies": len(company_ids), "executor": "airflow dags test"}
                row.update(bench_dags_test(stack, company_ids, args.timeout))
                print(json.dumps(row), flush=True)
                results.append(row)
    finally:
        stack.stop()
        shutil.rmtree(root, ignore_errors=True)
    print("\n| companies | executor | state | wall | TIs | wall/TI | TI duration |")
    print("|---:|---|---|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['companies']} | {r['executor']} | {r['state']} | {r['wall_s']} s | {r['task_instances']} | "
            f"{r['wall_per_ti_s']} s | {r['ti_duration_s']} s |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
