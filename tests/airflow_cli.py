"""Run a real Airflow (its command line, on SQLite) from tests: `airflow dags test` and friends.

One Airflow home per test process; the metadata database is migrated once per test run (``db migrate`` costs
seconds of CPU) and each home starts from a copy of it. Each call gets the environment it needs (dags folder,
connections) so that tests stay independent of one another.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from local_airflow import AIRFLOW, DAGS_TEST_ENV, isolated_airflow_env  # tools/, on pytest's pythonpath


@dataclass
class DagTestResult:
    """What one ``airflow dags test`` run left behind."""

    dag_id: str
    returncode: int
    output: str
    db_path: Path
    run_id: str | None = None

    def task_states(self) -> dict[tuple[str, int], str]:
        """``{(task_id, map_index): state}`` of this run."""
        rows = self._query(
            "select task_id, map_index, state from task_instance where dag_id = ? and run_id = ?",
        )
        return {(task_id, map_index): state for task_id, map_index, state in rows}

    def rendered_map_indexes(self, task_id: str) -> dict[int, str | None]:
        rows = self._query(
            "select map_index, rendered_map_index from task_instance "
            "where dag_id = ? and run_id = ? and task_id = ?",
            task_id,
        )
        return dict(rows)

    def xcom(self, task_id: str, map_index: int = -1, key: str = "return_value"):
        rows = self._query(
            "select value from xcom where dag_id = ? and run_id = ? and task_id = ? and map_index = ? and key = ?",
            task_id,
            map_index,
            key,
        )
        if not rows:
            raise KeyError(f"No XCom {key!r} for {task_id}[{map_index}] in {self.dag_id}/{self.run_id}")
        value = rows[0][0]
        return json.loads(value) if isinstance(value, str | bytes) else value

    def _query(self, sql: str, *args):
        with sqlite3.connect(self.db_path) as conn:
            return conn.execute(sql, (self.dag_id, self.run_id, *args)).fetchall()


@dataclass
class AirflowCLI:
    """An Airflow home on SQLite, migrated once, and a way to run Airflow commands against it."""

    home: Path
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, home: Path, *, migrated: Path | None = None) -> AirflowCLI:
        """An Airflow home at ``home``: its database a copy of ``migrated`` when given, else migrated here.

        :param home: the new ``AIRFLOW_HOME``.
        :param migrated: a migrated SQLite database (:func:`migrated_database`) to start from.
        """
        home.mkdir(parents=True, exist_ok=True)
        env = isolated_airflow_env(home, home / "dags")
        env["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "INFO"
        cli = cls(home=home, env=env)
        if migrated is not None:
            shutil.copyfile(migrated, cli.db_path)
            return cli
        result = cli.run("db", "migrate", timeout=300)
        if result.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed:\n{result.stdout}\n{result.stderr}")
        return cli

    @property
    def db_path(self) -> Path:
        return self.home / "airflow.db"

    def run(self, *args: str, extra_env: dict[str, str] | None = None, timeout: float = 600):
        env = {**self.env, **(extra_env or {})}
        return subprocess.run(
            [AIRFLOW, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
        )

    def dags_test(
        self,
        dag_id: str,
        *,
        dags_folder: Path,
        conf: dict | None = None,
        extra_env: dict[str, str] | None = None,
        timeout: float = 600,
    ) -> DagTestResult:
        """Run ``airflow dags test`` of one DAG and say what happened (the run id is read back from the DB)."""
        env = {"AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder), **DAGS_TEST_ENV, **(extra_env or {})}
        args = ["dags", "test", dag_id]
        if conf is not None:
            args += ["--conf", json.dumps(conf)]
        before = self._run_ids(dag_id)
        proc = self.run(*args, extra_env=env, timeout=timeout)
        new_runs = [run_id for run_id in self._run_ids(dag_id) if run_id not in before]
        return DagTestResult(
            dag_id=dag_id,
            returncode=proc.returncode,
            output=proc.stdout + proc.stderr,
            db_path=self.db_path,
            run_id=new_runs[-1] if new_runs else None,
        )

    def _run_ids(self, dag_id: str) -> list[str]:
        with sqlite3.connect(self.db_path) as conn:
            rows = conn.execute(
                "select run_id from dag_run where dag_id = ? order by id", (dag_id,)
            ).fetchall()
        return [row[0] for row in rows]


def migrated_database(folder: Path) -> Path:
    """A migrated SQLite metadata database in ``folder``, made by the first process that asks (pytest-xdist's
    workers share ``folder``) and only read afterwards: every home copies it instead of migrating its own.

    :param folder: a folder shared by the processes of one test run.
    """
    database = folder / "migrated-airflow" / "airflow.db"
    database.parent.mkdir(parents=True, exist_ok=True)
    with (folder / "migrated-airflow.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the others wait here while the first one migrates
        if not database.exists():
            made = AirflowCLI.create(database.parent / "home")
            made.db_path.replace(database)
    return database
