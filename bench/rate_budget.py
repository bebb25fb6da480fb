"""The shared request budget on the production topology (`make stack`: two Celery workers, a triggerer, the
API server, Postgres, Redis holding the budget): does a portfolio run keep to Codat's per-minute limit, use it
fully, and ride out a daily quota that runs out in the middle?

The simulator enforces a per-minute limit (default 600 a minute here, for a short run) and answers 429 past it;
the connection's ``requests_per_minute`` is a share of it (default 0.95). Two runs of ``codat_sync_daily`` over
the same companies:

1. *minute*: only the per-minute limit;
2. *quota*: the daily quota is also set to about a third of what the run needs (and half of what the rate
   allows in a period) and resets every ``--quota-period`` seconds: the company tasks must pause (deferred, no
   worker slot) and carry on after each reset.

For each: requests, the most in any 60 seconds and how many arrivals found more than the limit in the 60 s up to
them (0 wanted), the achieved rate (median of the run's full minutes, as a share of the limit), 429s by limit
(0 wanted), failed task instances (0 wanted), tasks that paused for the quota, and whether every company's
types landed.

    .venv/bin/python bench/rate_budget.py                      # 100 companies, 600 a minute
    .venv/bin/python bench/rate_budget.py --companies 60 --limit 300 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from stack_setup import DAG_ID, RECORDS, SYNC_SECONDS, Stack, control


def busiest(times: list[float], window: float = 60.0) -> int:
    """The most arrivals in any ``window`` seconds."""
    times = sorted(times)
    most, start = 0, 0
    for end, moment in enumerate(times):
        while times[start] <= moment - window:
            start += 1
        most = max(most, end - start + 1)
    return most


def over_limit(times: list[float], limit: int, window: float = 60.0) -> int:
    """Arrivals that found more than ``limit`` arrivals (themselves included) in the ``window`` seconds up to
    them."""
    times, count, start = sorted(times), 0, 0
    for end, moment in enumerate(times):
        while times[start] <= moment - window:
            start += 1
        count += end - start + 1 > limit
    return count


def full_minutes(times: list[float]) -> list[int]:
    """Requests in each whole minute from the first request (the last, partial minute left out)."""
    times = sorted(times)
    minutes = int((times[-1] - times[0]) // 60)
    return [sum(1 for t in times if times[0] + 60 * m <= t < times[0] + 60 * (m + 1)) for m in range(minutes)]


def run_dag(stack: Stack, company_ids: list[str], timeout: float) -> tuple[str, list[dict], float]:
    api = stack.api()
    response = api.post(
        f"/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": {"company_ids": company_ids}}
    )
    response.raise_for_status()
    run_id = response.json()["dag_run_id"]
    started, deadline = time.monotonic(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = api.get(f"/dags/{DAG_ID}/dagRuns/{run_id}").json()
        if run["state"] in ("success", "failed"):
            return run["state"], Stack.task_instances(api, DAG_ID, run_id), time.monotonic() - started
        time.sleep(5)
    raise SystemExit(f"{run_id} did not finish within {timeout:.0f} s")


def paused_for_quota(stack: Stack) -> int:
    """Task attempts that deferred for the quota, from the workers' task logs."""
    return sum(
        log.read_text(errors="replace").count("Deferring until")
        for log in (stack.home / "logs").rglob("*.log")
        if "codat_sync.sync" in str(log)
    )


def measure(stack: Stack, label: str, company_ids: list[str], limit: int, timeout: float) -> dict:
    control(stack.simulator_url, "reset_request_log")
    before = paused_for_quota(stack)
    state, tis, wall = run_dag(stack, company_ids, timeout)
    log = control(stack.simulator_url, "request_log")
    times = [entry["time"] for entry in log]
    minutes = full_minutes(times)
    rejected: dict[str, int] = {}
    for entry in log:
        if entry.get("limit"):
            rejected[entry["limit"]] = rejected.get(entry["limit"], 0) + 1
    syncs = [ti for ti in tis if ti["task_id"] == "codat_sync.sync"]
    return {
        "run": label,
        "state": state,
        "wall_s": round(wall),
        "requests": len(times),
        "busiest_60s": busiest(times),
        "arrivals_over_limit": over_limit(times, limit),
        "full_minutes": minutes,
        "achieved_share": round(statistics.median(minutes) / limit, 3) if minutes else None,
        "rejected_429": rejected,
        "failed_tis": sum(1 for ti in tis if ti["state"] != "success"),
        "company_tasks": len(syncs),
        "paused_for_quota": paused_for_quota(stack) - before,
    }


def one_round(args, round_number: int) -> list[dict]:
    root = Path(tempfile.mkdtemp(prefix="codat-bench-budget-"))
    root.chmod(0o755)  # Postgres runs as the postgres user when this is root
    stack = Stack(
        root=root,
        companies=args.companies + 1,  # the simulator leaves one company deauthorized
        sync_seconds=SYNC_SECONDS,
        records=RECORDS,
        overrides={"AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "false"},
        connection_extra={
            "requests_per_minute": int(args.limit * args.share),
            "quota_reserve": args.reserve,
        },
    )
    rows = []
    try:
        stack.start(timeout=300)
        control(stack.simulator_url, "set_rate_limits", requests_per_minute=args.limit)
        api = stack.api()
        while api.get(f"/dags/{DAG_ID}").status_code != 200:
            time.sleep(2)
        api.patch(f"/dags/{DAG_ID}", json={"is_paused": False}).raise_for_status()
        company_ids = control(stack.simulator_url, "linked_company_ids")[: args.companies]
        rows.append(measure(stack, "minute", company_ids, args.limit, args.timeout))
        # A quota that runs out about three times in the run, each time well before the period ends.
        needed, per_period = rows[-1]["requests"], int(args.limit * args.share * args.quota_period / 60)
        control(
            stack.simulator_url,
            "set_rate_limits",
            daily_quota=max(args.reserve + 20, min(needed // 3, per_period // 2)),
            quota_period_seconds=args.quota_period,
        )
        rows.append(measure(stack, "quota", company_ids, args.limit, args.timeout))
    finally:
        stack.stop()
        shutil.rmtree(root, ignore_errors=True)
    for row in rows:
        row["round"] = round_number
        print(json.dumps(row), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--companies", type=int, default=100)
    parser.add_argument("--limit", type=int, default=600, help="the simulator's requests per minute per IP")
    parser.add_argument("--share", type=float, default=0.95, help="the connection's share of the limit")
    parser.add_argument("--reserve", type=int, default=20, help="the connection's quota_reserve")
    parser.add_argument("--quota-period", type=float, default=120.0, help="seconds between quota resets")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=3600, help="per run")
    args = parser.parse_args(argv)
    rows = [row for n in range(1, args.repeat + 1) for row in one_round(args, n)]
    print(f"\nlimit {args.limit}/min, budget {int(args.limit * args.share)}/min, {args.companies} companies")
    print(
        "| run | round | state | wall | requests | busiest 60 s | arrivals over | achieved | 429s | failed TIs "
        "| paused |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|---|---:|---:|")
    for r in rows:
        print(
            f"| {r['run']} | {r['round']} | {r['state']} | {r['wall_s']} s | {r['requests']} | {r['busiest_60s']} "
            f"| {r['arrivals_over_limit']} | {r['achieved_share']} | {r['rejected_429'] or 0} | {r['failed_tis']} "
            f"| {r['paused_for_quota']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
