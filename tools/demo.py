"""`make demo`: the daily Codat DAG, twice, against a local Codat simulator, with no account and no setup.

1. starts the simulator (5 companies, 1-second syncs) in this process;
2. migrates a project-local Airflow on SQLite in ``.demo/airflow`` and points ``codat_default`` at the
   simulator with an ``AIRFLOW_CONN_CODAT_DEFAULT`` variable;
3. runs ``airflow dags test codat_sync_daily``: every record lands in ``.demo/codat-data``;
4. changes records in the simulator (created, modified, deleted), runs the DAG again: only the changes land;
5. checks the files against the simulator's records, prints a summary, stops the simulator;
6. checks each data type's current-state Delta table (``.demo/codat-data/_tables``) against the simulator's
   live records and prints a few rows of the invoices table read back with DuckDB.

It exits non-zero if a run or the check failed. Each Airflow command's output is in ``.demo/logs``.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from local_airflow import (
    DAGS_TEST_ENV,
    ROOT,
    airflow_env,
    latest_versions,
    read_run_files,
    run_airflow,
    simulator_versions,
    totals_by_type,
)

from airflow_provider_codat.simulator import SimulatorState, run_in_thread

DAG_ID = "codat_sync_daily"
# What the second run should find: changes made in each linked company between the runs.
CHANGES = {"invoices": (3, 2, 1), "payments": (2, 1, 1), "bills": (1, 1, 0)}


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workdir", type=Path, default=ROOT / ".demo", help="where everything goes (wiped)")
    parser.add_argument("--companies", type=int, default=5)
    parser.add_argument("--records", type=int, default=50, help="records per type per company")
    parser.add_argument("--sync-seconds", type=float, default=1.0, help="how long a simulated sync takes")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    started = time.monotonic()
    workdir: Path = args.workdir.resolve()
    shutil.rmtree(workdir, ignore_errors=True)  # the simulator starts afresh, so must the watermarks
    home, destination, logs = workdir / "airflow", workdir / "codat-data", workdir / "logs"
    home.mkdir(parents=True)
    destination.mkdir(parents=True)

    state = SimulatorState(companies=args.companies, records=args.records, sync_seconds=args.sync_seconds)
    with run_in_thread(state) as simulator:
        print(
            f"Codat simulator on {simulator.base_url}: {args.companies} companies, {args.sync_seconds:g} s syncs"
        )
        env = airflow_env(
            home,
            connection_json=simulator.connection_json,
            destination=destination,
            poke_interval=max(1.0, args.sync_seconds),
        )
        step("Airflow on SQLite in " + _rel(home) + ": airflow db migrate")
        if run_airflow("db", "migrate", env=env, log_file=logs / "db-migrate.log").returncode != 0:
            return fail("airflow db migrate failed", logs / "db-migrate.log")
        runs = _run_twice(simulator, env, home, destination, logs)
        if isinstance(runs, int):
            return runs
        problems = check_against_simulator(simulator.control, destination)
        problems += check_tables(simulator.control, destination)

    _print_runs(runs, args.companies, destination, logs)
    show_invoices(destination)
    if problems:
        print("\nCheck FAILED: the files do not match the simulator's records:")
        for problem in problems[:20]:
            print("  " + problem)
        return 1
    print(
        "Check: the newest version of every record in the files matches the simulator's records, "
        "deleted ones included; each table holds exactly the live records, at their newest version."
    )
    print(f"Wall time: {time.monotonic() - started:.0f} s")
    _print_health_page(home)
    return 0


def _print_health_page(home: Path) -> None:
    """Where the portfolio health page is (the demo's runs reported to it: docs/health.md)."""
    print(
        "\nPortfolio health page: Browse > Codat portfolio health, at http://127.0.0.1:8080/plugin/codat-health"
        " (the page alone: http://127.0.0.1:8080/codat/health), once the Airflow UI runs:\n"
        f"  these runs:  .venv/bin/python tools/airflow_ui.py --home {_rel(home)}\n"
        "  a fresh one: make airflow\n"
        "(docs/health.md)"
    )


def _run_twice(simulator, env: dict, home: Path, destination: Path, logs: Path) -> list[tuple] | int:
    """Two runs of the DAG with changes in the simulator between them; each run's files, calls and seconds
    (or the exit code when a run failed)."""
    runs = []
    for number in (1, 2):
        if number == 2:
            changed = make_changes(simulator.control)
            step(f"Changed in the simulator between the runs: {changed}")
        simulator.control.reset_request_log()
        step(f"Run {number}: airflow dags test {DAG_ID}")
        log_file = logs / f"dags-test-{number}.log"
        t0 = time.monotonic()
        proc = run_airflow("dags", "test", DAG_ID, env={**env, **DAGS_TEST_ENV}, log_file=log_file)
        seconds = time.monotonic() - t0
        run_id = _latest_run_id(home / "airflow.db")
        if proc.returncode != 0 or run_id is None:
            return fail(f"run {number} failed (exit code {proc.returncode})", log_file)
        files = read_run_files(destination, run_id)
        runs.append((number, run_id, files, simulator.control.request_count(), seconds))
        print(f"   done in {seconds:.0f} s, {simulator.control.request_count()} Codat API calls")
    return runs


def _print_runs(runs: list[tuple], company_count: int, destination: Path, logs: Path) -> None:
    """Per run: its calls and seconds, and records and deletions by data type; then where things are."""
    companies = len({company_id for _, _, files, _, _ in runs for company_id, _ in files})
    print()
    print(
        f"Summary: {DAG_ID}, {companies} linked companies ({company_count - companies} not linked: skipped)"
    )
    for number, run_id, files, calls, seconds in runs:
        print(f"\nRun {number} ({run_id}): {calls} Codat API calls, {seconds:.0f} s")
        print(f"  {'data type':<22}{'companies':>10}{'records':>10}{'deleted':>10}")
        totals = totals_by_type(files)
        for data_type in sorted(totals):
            t = totals[data_type]
            print(f"  {data_type:<22}{t['companies']:>10}{t['records']:>10}{t['deleted']:>10}")
        print(
            f"  {'total':<22}{'':>10}{sum(t['records'] for t in totals.values()):>10}"
            f"{sum(t['deleted'] for t in totals.values()):>10}"
        )
    print(
        f"\nFiles: {_rel(destination)}/<company id>/<data type>/run=<run id>/part-*.jsonl.gz (+ _state.json)"
    )
    print(f"Tables: {_rel(destination)}/_tables/<data type> (Delta Lake, docs/tables.md)")
    print(f"Logs:  {_rel(logs)}/")


def make_changes(control) -> dict[str, str]:
    """Create, modify and delete records in every linked company, as the companies' bookkeeping would."""
    counts: dict[str, list[int]] = {}
    for company_id in control.linked_company_ids():
        for data_type, (created, modified, deleted) in CHANGES.items():
            control.mutate(company_id, data_type, created=created, modified=modified, deleted=deleted)
            total = counts.setdefault(data_type, [0, 0, 0])
            total[0] += created
            total[1] += modified
            total[2] += deleted
    return {k: f"+{c} ~{m} -{d}" for k, (c, m, d) in counts.items()}


def check_against_simulator(control, destination: Path) -> list[str]:
    """Compare, per company and type, the newest version of each record across all runs' files with the
    simulator's records: the same ids and the same modifiedDate, deleted records included.

    Types without ``metadata.isDeleted`` (bank transactions) lose deleted records without a trace, so an
    incremental read cannot see those deletions: the files may keep such ids, and nothing else.
    """
    from airflow_provider_codat.datatypes import get_data_type

    problems = []
    for (company_id, data_type), records in sorted(read_run_files(destination).items()):
        truth = simulator_versions(control, company_id, data_type)
        written = latest_versions(records)
        missing = len(truth.keys() - written.keys())
        stale = sum(1 for key in truth.keys() & written.keys() if truth[key] != written[key])
        extra = len(written.keys() - truth.keys())
        if not get_data_type(data_type).has_deleted_flag:
            extra = 0
        if missing or stale or extra:
            problems.append(f"{company_id} {data_type}: {missing} missing, {stale} stale, {extra} unknown")
    return problems


def check_tables(control, destination: Path) -> list[str]:
    """Compare each table with the simulator's live records: one row per record, at its newest version.

    As in the files, a bank transaction deleted in the source cannot be seen (no ``metadata.isDeleted``), so
    its row stays: extra rows are not counted for those types.
    """
    from deltalake import DeltaTable

    from airflow_provider_codat.datatypes import get_data_type
    from airflow_provider_codat.timestamps import parse_timestamp

    problems = []
    companies = {company_id for company_id, _ in read_run_files(destination)}
    for table in sorted((destination / "_tables").glob("[!_]*")):
        rows = DeltaTable(str(table)).to_pyarrow_table(columns=["_codat_company_id", "id", "modifiedDate"])
        for company_id in sorted(companies):
            held = [
                (r["id"], r["modifiedDate"]) for r in rows.to_pylist() if r["_codat_company_id"] == company_id
            ]
            truth = simulator_versions(control, company_id, table.name, live=True)
            stale = sum(
                1
                for record_id, modified in held
                if record_id in truth and modified != parse_timestamp(truth[record_id])
            )
            missing = len(truth.keys() - {record_id for record_id, _ in held})
            extra = len({record_id for record_id, _ in held} - truth.keys())
            if not get_data_type(table.name).has_deleted_flag:
                extra = 0
            if len(held) != len(set(held)) or missing or extra or stale:
                problems.append(
                    f"table {table.name}, {company_id}: {missing} missing, {stale} stale, {extra} extra"
                )
    return problems


def show_invoices(destination: Path) -> None:
    """A few rows of the invoices table, read back with DuckDB (through delta-rs's Arrow dataset)."""
    import duckdb
    from deltalake import DeltaTable

    invoices = DeltaTable(str(destination / "_tables" / "invoices")).to_pyarrow_dataset()  # noqa: F841 (DuckDB reads it)
    query = """
        SELECT left(_codat_company_id, 8) AS company, invoiceNumber AS number, status, currency,
               totalAmount::DECIMAL(18, 2) AS total, amountDue::DECIMAL(18, 2) AS due, issueDate::DATE AS issued
        FROM invoices ORDER BY modifiedDate DESC, number LIMIT 5
    """
    print("\nThe invoices table, read back with DuckDB (newest first):")
    for line in str(duckdb.sql(query)).splitlines():
        print("  " + line)


def _latest_run_id(db: Path) -> str | None:
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "select run_id from dag_run where dag_id = ? order by id desc", (DAG_ID,)
        ).fetchone()
    return row[0] if row else None


def step(text: str) -> None:
    print(f"-> {text}", flush=True)


def fail(message: str, log_file: Path) -> int:
    print(f"\nFAILED: {message}. Last lines of {_rel(log_file)}:", file=sys.stderr)
    lines = log_file.read_text(errors="replace").splitlines() if log_file.exists() else []
    for line in lines[-40:]:
        print("   " + line, file=sys.stderr)
    return 1


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
