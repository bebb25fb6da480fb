"""The Codat requests a reconcile costs per company, for the types the weekly example DAG reconciles.

The simulator runs in-process with its default data set (seed 1); the company is its first, which has an
accounting, a banking and a commerce connection (3 bank accounts). Every type the weekly DAG reconciles is
extracted first (run ``week1``), then each drops a record per scope as a completed sync would, and the
company's reconcile (``reconcile_company``, as the company sync task calls it) is counted from the simulator's
request log: the ``dataStatus`` read (which the DAG takes from its wait, so 0 there), the listings and the
full-read pages. A second reconcile with no sync since is counted too (it is skipped). Request counts do not
depend on the machine: one run is enough.

    .venv/bin/python bench/reconcile_requests.py                  # 50 records per scope (the default set)
    .venv/bin/python bench/reconcile_requests.py --records 50 6000 # also 6,000 a scope (two pages each)
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import tempfile
from collections import Counter
from pathlib import Path

from airflow_provider_codat.budget.request_plan import reconcile_requests
from airflow_provider_codat.extract.company_reconcile import reconcile_company
from airflow_provider_codat.extract.concurrent_types import extract_types
from airflow_provider_codat.extract.request import ExtractRequest
from airflow_provider_codat.simulator.server import run_in_thread
from airflow_provider_codat.simulator.world import SimulatorState
from airflow_provider_codat.values import CompanyId

ROOT = Path(__file__).resolve().parents[1]


def weekly_reconcile_types() -> list[str]:
    spec = importlib.util.spec_from_file_location("codat_sync_table", ROOT / "dags" / "codat_sync.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return next(row for row in module.SYNC_TABLE if row.dag_id == "codat_sync_weekly").reconcile_types


def kind(path: str) -> str:
    if path.endswith("/dataStatus"):
        return "dataStatus"
    if path.endswith("/connections"):
        return "connections"
    if path.endswith("/bankAccounts"):
        return "bankAccounts"
    return "full-read pages"


def measure(records: int, types: list[str]) -> dict:
    from airflow_provider_codat.hooks.codat import CodatHook

    state = SimulatorState(records=records, requests_per_minute=None, daily_quota=10**9)
    with run_in_thread(state) as sim, tempfile.TemporaryDirectory() as folder:
        os.environ.update(sim.conn_env)
        os.environ["CODAT_REQUEST_BUDGET_STORE"] = "memory://bench"
        company = sim.control.linked_company_ids()[0]

        def requests(run_id: str) -> list[ExtractRequest]:
            company_id = CompanyId.parse(company, "company_id")
            return [
                ExtractRequest.for_run(
                    company_id=company_id, data_type=key, destination=f"file://{folder}", run_id=run_id
                )
                for key in types
            ]

        with CodatHook() as hook:
            extract_types(hook, requests("week1"))
            dropped = sum(len(sim.control.mutate(company, key, deleted=1)["deleted"]) for key in types)
            extract_types(hook, requests("week2"))  # the week's read: the drops leave no trace in it
            sim.control.reset_request_log()
            results = reconcile_company(hook, requests("week2"))
            first = Counter(kind(r["path"]) for r in sim.control.request_log())
            sim.control.reset_request_log()
            again = reconcile_company(hook, requests("week3"))  # next week, no sync since
            second = Counter(kind(r["path"]) for r in sim.control.request_log())
    assert all(r["status"] == "reconciled" for r in results.values()), results
    assert all(r["status"] == "skipped" for r in again.values()), again
    return {
        "records": records,
        "types": len(types),
        "dropped": dropped,
        "tombstoned": sum(r["tombstoned"] for r in results.values()),
        "scopes": sum(r["scopes"] for r in results.values()),
        "first": first,
        "skipped": second,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, nargs="+", default=[50])
    args = parser.parse_args()
    types = weekly_reconcile_types()
    print(f"weekly reconcile types ({len(types)}): {', '.join(types)}")
    print(f"plan's estimate per company: {reconcile_requests(types)} requests")
    print(
        "| records a scope | scopes | tombstones (dropped) | requests | dataStatus | connections | bankAccounts "
        "| full-read pages | skipped re-run |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for records in args.records:
        m = measure(records, types)
        first = m["first"]
        print(
            f"| {records:,} | {m['scopes']} | {m['tombstoned']} ({m['dropped']}) | {sum(first.values())} "
            f"| {first['dataStatus']} | {first['connections']} | {first['bankAccounts']} "
            f"| {first['full-read pages']} | {sum(m['skipped'].values())} |"
        )


if __name__ == "__main__":
    main()
