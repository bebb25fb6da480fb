"""Health reports and XCom rows for tests, shaped as a company task pushes them."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import text

from airflow_provider_codat.health.report import REPORT_KEY


def a_report(
    companies: dict[str, dict[str, dict[str, Any]]],
    *,
    dag_id: str = "codat_sync_daily",
    run_id: str = "scheduled__2026-12-07",
    task_id: str = "sync",
    names: dict[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """``companies``: ``{company_id: {data_type: entry}}``."""
    return {
        "v": 1,
        "dag_id": dag_id,
        "run_id": run_id,
        "task_id": task_id,
        "companies": {c: {"name": (names or {}).get(c), "types": t} for c, t in companies.items()},
        **extra,
    }


def push_xcom(
    engine: Any, report: dict[str, Any], *, at: datetime, dag_run_id: int = 1, map_index: int = -1
) -> None:
    """Store ``report`` as the task's XCom row, as Airflow's execution API does (serialized JSON).

    The row's task instance is not created: foreign keys are off for this one statement's connection.
    """
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.execute(
            text(
                "insert into xcom (dag_run_id, task_id, map_index, key, dag_id, run_id, value, timestamp) "
                "values (:dag_run_id, :task_id, :map_index, :key, :dag_id, :run_id, :value, :timestamp)"
            ),
            {
                "dag_run_id": dag_run_id,
                "task_id": report["task_id"],
                "map_index": map_index,
                "key": REPORT_KEY,
                "dag_id": report["dag_id"],
                "run_id": report["run_id"],
                "value": json.dumps(json.dumps(report)),
                "timestamp": at.strftime("%Y-%m-%d %H:%M:%S.%f"),
            },
        )
        connection.commit()
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")
