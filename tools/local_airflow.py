"""What `make demo`, `make airflow` and the end-to-end test share: a project-local Airflow on SQLite whose
``codat_default`` connection points at a local Codat simulator, and a reader for the files the DAGs write."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from airflow_provider_codat.landing.layout import run_folder_name
from airflow_provider_codat.triggers.sync import RESUME_SETTLE_ENV

ROOT = Path(__file__).resolve().parents[1]
DAGS_FOLDER = ROOT / "dags"
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
# `airflow dags test` runs triggers in its own process, with no scheduler for them to race: no settling needed.
DAGS_TEST_ENV = {RESUME_SETTLE_ENV: "0"}


def isolated_airflow_env(home: Path, dags_folder: Path) -> dict[str, str]:
    """This process's environment for an Airflow whose home is ``home`` (SQLite database, logs, config): nothing
    from the caller's own Airflow (``AIRFLOW__*``, connections, Variables) leaks in; no example DAGs.

    :param home: the ``AIRFLOW_HOME``.
    :param dags_folder: the DAGs folder.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_")) and key != RESUME_SETTLE_ENV
    }
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags_folder),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
        PYTHONUNBUFFERED="1",
    )
    return env


def airflow_env(
    home: Path,
    *,
    connection_json: str,
    destination: Path,
    poke_interval: float | None = None,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """The environment for every Airflow command: nothing from the caller's own Airflow leaks in.

    :param home: the ``AIRFLOW_HOME`` (SQLite database, logs, config).
    :param connection_json: the ``codat_default`` connection, JSON form.
    :param destination: where the example DAGs write (the ``codat_destination`` Variable).
    :param poke_interval: first interval of the sync sensors, short against the simulator.
    :param extra: more variables, which win.
    """
    env = isolated_airflow_env(home, DAGS_FOLDER)
    env.update(
        AIRFLOW_CONN_CODAT_DEFAULT=connection_json,
        AIRFLOW_VAR_CODAT_DESTINATION=destination.resolve().as_uri(),
        # `airflow standalone` starts its components as `airflow ...` from the PATH: this venv's.
        PATH=os.pathsep.join([str(Path(AIRFLOW).parent), os.environ.get("PATH", "")]),
    )
    if poke_interval is not None:
        env["CODAT_SYNC_POKE_INTERVAL"] = str(poke_interval)
    env.update(extra or {})
    return env


def run_airflow(
    *args: str, env: dict[str, str], log_file: Path, timeout: float = 900
) -> subprocess.CompletedProcess:
    """Run one Airflow command, its output going to ``log_file`` (the summary stays readable)."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("w") as out:
        return subprocess.run(
            [AIRFLOW, *args], env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, check=False
        )


def read_run_files(destination: Path, run_id: str | None = None) -> dict[tuple[str, str], list[dict]]:
    """``{(company_id, data_type): [records]}`` from the part files of one run (every run when ``None``)."""
    found: dict[tuple[str, str], list[dict]] = {}
    folder = run_folder_name(run_id) if run_id else "run=*"
    pattern = f"*/*/{folder}/part-*.jsonl.gz"
    for part in sorted(destination.glob(pattern)):
        data_type_dir = part.parent.parent
        key = (data_type_dir.parent.name, data_type_dir.name)
        with gzip.open(part, "rt", encoding="utf-8") as lines:
            found.setdefault(key, []).extend(json.loads(line) for line in lines if line.strip())
    return found


def is_deleted(record: dict) -> bool:
    return bool((record.get("metadata") or {}).get("isDeleted"))


def totals_by_type(files: dict[tuple[str, str], list[dict]]) -> dict[str, Counter]:
    """``{data_type: Counter(companies, records, deleted)}``."""
    totals: dict[str, Counter] = {}
    for (_company_id, data_type), records in files.items():
        counter = totals.setdefault(data_type, Counter())
        counter["companies"] += 1
        counter["records"] += len(records)
        counter["deleted"] += sum(1 for record in records if is_deleted(record))
    return totals


def simulator_versions(control, company_id: str, data_type: str, *, live: bool = False) -> dict[str, str]:
    """``{record id: modifiedDate}`` the simulator holds for one company and type, across its connections
    and bank accounts (ids are UUIDs, unique across them); ``live``: without the deleted ones."""
    from airflow_provider_codat.datatypes import Scope, get_data_type

    entry = get_data_type(data_type)
    scopes: list[tuple[str | None, str | None]] = [(None, None)]
    if entry.scope is not Scope.COMPANY:
        company = next(c for c in control.companies() if c["id"] == company_id)
        connections = [c["id"] for c in company["connections"] if c["sourceType"] == entry.source_type]
        if entry.scope is Scope.CONNECTION:
            scopes = [(connection_id, None) for connection_id in connections]
        else:
            scopes = [
                (connection_id, account_id)
                for connection_id in connections
                for account_id in control.bank_account_ids(company_id, connection_id)
            ]
    versions: dict[str, str] = {}
    for connection_id, account_id in scopes:
        for record in control.records(company_id, data_type, connection_id, account_id):
            if not (live and (record.get("metadata") or {}).get("isDeleted")):
                versions[record["id"]] = record.get("modifiedDate")
    return versions


def latest_versions(records: list[dict]) -> dict[str, str]:
    """``{record id: modifiedDate}`` of the newest version of each record in the files."""
    latest: dict[str, str] = {}
    for record in records:
        current = latest.get(record["id"])
        if current is None or (record.get("modifiedDate") or "") >= current:
            latest[record["id"]] = record.get("modifiedDate")
    return latest
