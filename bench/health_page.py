"""The health page's data call at portfolio scale: 10,000 companies × 9 data types on SQLite.

    AIRFLOW_HOME=$(mktemp -d) .venv/bin/python bench/health_page.py [--companies 10000] [--calls 40]

Migrates a fresh Airflow database in that home, records one report per 500 companies (every type landed, one
company in 50 failed), then times the page's data (the grouped read, the page's companies, the deployment's
figures) as the route computes it, for an admin who may read every DAG.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from datetime import UTC, datetime

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
    args = parser.parse_args()
    from airflow.utils.db import upgradedb

    from airflow_provider_codat.health.query import Ask, deployment, portfolio
    from airflow_provider_codat.health.record import apply_report
    from airflow_provider_codat.health.schema import TABLES

    upgradedb()
    engine = TABLES.engine()
    now = datetime.now(tz=UTC)
    ids = [str(uuid.UUID(int=n + 1, version=4)) for n in range(args.companies)]
    started = time.perf_counter()
    for start in range(0, len(ids), 500):
        companies = {
            c: {
                "name": f"Company {n}",
                "types": {
                    t: (
                        {"status": "failed", "error": "sync FetchError"}
                        if n % 50 == 0 and t == "payments"
                        else {"status": "extracted", "records": 10}
                    )
                    for t in TYPES
                },
            }
            for n, c in enumerate(ids[start : start + 500], start)
        }
        report = {
            "dag_id": "codat_sync_daily",
            "run_id": "scheduled__bench",
            "task_id": "sync",
            "companies": companies,
        }
        with engine.begin() as connection:
            apply_report(connection, report, at=now)
    print(f"recorded {len(ids)} companies x {len(TYPES)} types in {time.perf_counter() - started:.1f} s")
    timings = []
    for call in range(args.calls):
        ask = Ask.of(filter=("all", "failed", "stale")[call % 3], search="", sort="state", page=1 + call % 5)
        begun = time.perf_counter()
        with engine.connect() as connection:
            portfolio(connection, {"codat_sync_daily"}, ask, now=now)
            deployment(connection, now=now, inbox_waiting=0)
        timings.append((time.perf_counter() - begun) * 1000)
    timings.sort()
    p95 = timings[int(len(timings) * 0.95) - 1]
    print(
        f"data call: median {statistics.median(timings):.0f} ms, p95 {p95:.0f} ms over {len(timings)} calls"
    )


if __name__ == "__main__":
    main()
