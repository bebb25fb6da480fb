"""`make stack`: Airflow as production runs it, on this machine, without Docker.

Postgres (Debian's ``postgresql``: ``initdb``/``pg_ctl``), Redis (Debian's ``redis-server``), the Codat
simulator, and Airflow's api-server, scheduler, dag-processor, triggerer and two Celery workers, all from this
venv, each in its own process group, everything under ``.stack/`` (git-ignored). The settings every Airflow
component gets come from ``airflow.env``, the file docker-compose.yaml reads too; only host names, ports and
secrets are set here. Ports are free ports picked at start, so several stacks (and other programs) coexist.

    python tools/stack.py start [--companies 5]    # what `make stack` runs; prints the UI URL and the login
    python tools/stack.py stop                     # what `make stack-stop` runs: stops what start started
    python tools/stack.py status
    python tools/stack.py env                      # `eval "$(python tools/stack.py env)"`, then `airflow ...`

Each process's pid is in ``.stack/run/<name>.pid`` (Postgres's in its ``postmaster.pid``); ``stop`` signals
only those, after checking that the pid still runs the command it started.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from local_airflow import AIRFLOW, ROOT, airflow_env
from postgres_cluster import postgres_bin, start_cluster, stop_cluster
from processes import ancestors, free_ports, process_start_time, process_tree, stop_groups

SETTINGS_FILE = ROOT / "airflow.env"
DEFAULT_DIR = ROOT / ".stack"
AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer", "worker-1", "worker-2")
INSTALL_HINT = "apt-get update && apt-get install -y postgresql redis-server"


def shared_settings(path: Path = SETTINGS_FILE) -> dict[str, str]:
    """``KEY=VALUE`` lines of ``airflow.env`` (comments and blank lines skipped), as docker-compose reads them.

    :param path: the settings file.
    """
    settings: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{path.name} line {number}: expected KEY=VALUE, got {line[:80]!r}.")
        settings[key.strip()] = value.strip()
    return settings


# -- Debian's servers ---------------------------------------------------------------------------------------
def missing_packages() -> list[str]:
    """Debian packages the stack needs and this machine lacks."""
    missing = []
    if not (postgres_bin("initdb") and postgres_bin("pg_ctl")):
        missing.append("postgresql")
    if not shutil.which("redis-server"):
        missing.append("redis-server")
    return missing


# -- the stack ----------------------------------------------------------------------------------------------
@dataclass
class Stack:
    """One stack's folder, ports and secrets (``<dir>/stack.json``), and its processes.

    :param root: the stack's folder (``.stack/`` by default).
    :param companies: simulator companies.
    :param sync_seconds: how long a simulated sync takes.
    :param records: simulator records per data type and scope.
    :param overrides: settings that win over ``airflow.env`` (tests: shorter timeouts).
    :param connection_extra: extras of the Codat connection (a benchmark's request budget).
    :param components: the Airflow processes to run (default all; a test may need only the api-server).
    """

    root: Path = DEFAULT_DIR
    companies: int = 5
    sync_seconds: float = 10.0
    records: int = 50
    overrides: dict[str, str] = field(default_factory=dict)
    connection_extra: dict[str, Any] = field(default_factory=dict)
    components: tuple[str, ...] = AIRFLOW_COMPONENTS
    ports: dict[str, int] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict, repr=False)

    # folders
    @property
    def home(self) -> Path:
        return self.root / "airflow"

    @property
    def pgdata(self) -> Path:
        return self.root / "postgres"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def destination(self) -> Path:
        return self.root / "codat-data"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['api']}"

    @property
    def simulator_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['simulator']}"

    @property
    def password_file(self) -> Path:
        return self.home / "passwords.json"

    # configuration
    def save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        config = {
            "companies": self.companies,
            "sync_seconds": self.sync_seconds,
            "records": self.records,
            "overrides": self.overrides,
            "connection_extra": self.connection_extra,
            "components": list(self.components),
            "ports": self.ports,
            "secrets": self.secrets,
        }
        path = self.root / "stack.json"
        path.write_text(json.dumps(config, indent=2))
        path.chmod(0o600)

    @classmethod
    def load(cls, root: Path = DEFAULT_DIR) -> Stack:
        path = root / "stack.json"
        if not path.exists():
            raise SystemExit(f"No stack in {root} (no stack.json): start one with `make stack`.")
        config = json.loads(path.read_text())
        config["components"] = tuple(config.get("components", AIRFLOW_COMPONENTS))
        return cls(root=root, **config)

    def settings(self) -> dict[str, str]:
        """Every Airflow component's settings: ``airflow.env``, then where things run here, then overrides."""
        shared = shared_settings()
        user, password, db = shared["POSTGRES_USER"], shared["POSTGRES_PASSWORD"], shared["POSTGRES_DB"]
        database = f"{user}:{password}@127.0.0.1:{self.ports['postgres']}/{db}"
        api = self.ui_url
        local = {
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{database}",
            # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3: name the driver installed.
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://{database}",
            "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{self.ports['redis']}/0",
            # One Codat request budget for every component, in the Redis they already share (docs/deploy.md).
            "CODAT_REQUEST_BUDGET_STORE": f"redis://127.0.0.1:{self.ports['redis']}/1",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.ports["api"]),
            "AIRFLOW__API__BASE_URL": api,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": self.secrets["jwt"],
            "AIRFLOW__API__SECRET_KEY": self.secrets["api"],
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.password_file),
            # Every server socket on a free port: two workers (and other stacks) on one machine.
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(self.ports["scheduler-health"]),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.ports["triggerer-logs"]),
        }
        return {**shared, **local, **self.overrides}

    def env(self, component: str | None = None) -> dict[str, str]:
        """The process environment of one Airflow component (``None``: an ``airflow`` command)."""
        connection = {
            "conn_type": "codat",
            "host": self.simulator_url,
            "password": self.secrets["simulator_key"],
            # The simulator signs its webhooks with this; the api-server's receiver checks them.
            "extra": {
                **self.connection_extra,
                **({"webhook_secret": self.secrets["webhook"]} if "webhook" in self.secrets else {}),
            },
        }
        extra = self.settings()
        extra["CODAT_SYNC_POKE_INTERVAL"] = "2"  # the simulator's syncs take seconds
        if component and component.startswith("worker-"):
            extra["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] = str(self.ports[f"{component}-logs"])
        return airflow_env(
            self.home, connection_json=json.dumps(connection), destination=self.destination, extra=extra
        )

    def command(self, name: str) -> list[str]:
        """The command line of one process the stack starts (not Postgres: ``pg_ctl`` runs it)."""
        if name == "redis":
            return [
                shutil.which("redis-server") or "redis-server",
                "--bind", "127.0.0.1",
                "--port", str(self.ports["redis"]),
                "--dir", str(self.root / "redis"),
                "--save", "",
                "--appendonly", "no",
                "--daemonize", "no",
            ]  # fmt: skip
        if name == "simulator":
            return [
                sys.executable, "-m", "airflow_provider_codat.simulator",
                "--port", str(self.ports["simulator"]),
                "--companies", str(self.companies),
                "--records", str(self.records),
                "--sync-seconds", str(self.sync_seconds),
                "--api-key", self.secrets["simulator_key"],
            ]  # fmt: skip
        if name.startswith("worker-"):
            return [AIRFLOW, "celery", "worker", "--celery-hostname", f"{name}@%h"]
        return [AIRFLOW, name]

    def api(self) -> httpx.Client:
        """A REST API client (``/api/v2``), logged in as the stack's user."""
        token = httpx.post(
            f"{self.ui_url}/auth/token",
            json={"username": "airflow", "password": self.secrets["password"]},
            timeout=30,
        )
        token.raise_for_status()
        return httpx.Client(
            base_url=f"{self.ui_url}/api/v2",
            headers={"Authorization": f"Bearer {token.json()['access_token']}"},
            timeout=60,
        )

    @staticmethod
    def task_instances(api: httpx.Client, dag_id: str, run_id: str) -> list[dict]:
        """Every task instance of one run, page by page (the API returns at most 100 at a time)."""
        found: list[dict] = []
        while True:
            response = api.get(
                f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 100, "offset": len(found)}
            )
            response.raise_for_status()
            page = response.json()
            found.extend(page["task_instances"])
            if not page["task_instances"] or len(found) >= page["total_entries"]:
                return found

    # processes
    def pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def spawn(self, name: str) -> int:
        """Start one process in its own process group, output to ``logs/<name>.log``; record its pid."""
        self.logs.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        env = (
            self.env(name) if name not in ("redis", "simulator") else {**os.environ, "PYTHONUNBUFFERED": "1"}
        )
        with (self.logs / f"{name}.log").open("a") as log:
            proc = subprocess.Popen(
                self.command(name),
                env=env,
                cwd=self.root,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        # The start time with the pid: a pid reused by another process later does not match.
        self.pid_file(name).write_text(f"{proc.pid} {process_start_time(proc.pid)}\n")
        return proc.pid

    def pid(self, name: str) -> int | None:
        """The recorded pid of ``name`` if that process still runs the command the stack gave it."""
        try:
            if name == "postgres":
                pid = int((self.pgdata / "postmaster.pid").read_text().split()[0])
                alive = Path(f"/proc/{pid}/comm").read_text().strip() == "postgres"
            else:
                pid_text, started = self.pid_file(name).read_text().split()
                pid = int(pid_text)
                alive = process_start_time(pid) == started
        except (OSError, ValueError, IndexError):
            return None
        return pid if alive else None

    def kill(self, name: str, sig: int = signal.SIGKILL) -> set[int]:
        """Send ``sig`` to ``name`` and every process under it, as a machine or pod dying would (Airflow
        runs each task in a process group of its own); return the pids signalled (its task processes too)."""
        pid = self.pid(name)
        if pid is None:
            raise RuntimeError(f"{name} is not running (no live pid in {self.pid_file(name)}).")
        members = process_tree(pid)
        for member in members:
            with contextlib.suppress(ProcessLookupError):
                os.kill(member, sig)
        return members

    def component_of(self, pid: int) -> str | None:
        """The stack's process that ``pid`` runs under (itself or an ancestor), if any."""
        leaders = {self.pid(name): name for name in AIRFLOW_COMPONENTS}
        for ancestor in ancestors(pid):
            if ancestor in leaders:
                return leaders[ancestor]
        return None

    # start and stop
    def start(self, *, timeout: float = 240) -> None:
        """Start everything; return once the api-server says every component is healthy (stop what was
        started, and raise ``SystemExit`` saying why, when something does not come up)."""
        missing = missing_packages()
        if missing:
            raise SystemExit(f"`make stack` needs Debian's {' and '.join(missing)}: {INSTALL_HINT}")
        running = [name for name in ("postgres", "redis", "simulator", *AIRFLOW_COMPONENTS) if self.pid(name)]
        if running:
            raise SystemExit(
                f"A stack already runs in {self.root} ({', '.join(running)}): `make stack-stop`."
            )
        try:
            self._start_all(timeout)
        except BaseException:
            self.stop()  # what this call started, nothing of a stack that was running before it
            raise

    def _start_all(self, timeout: float) -> None:
        started = time.monotonic()
        names = ["postgres", "redis", "simulator", "api", "scheduler-health", "triggerer-logs"]
        self.ports = free_ports([*names, "worker-1-logs", "worker-2-logs"])
        self.secrets = self.secrets or {
            "jwt": secrets.token_urlsafe(32),
            "api": secrets.token_urlsafe(32),
            "simulator_key": secrets.token_urlsafe(16),
            "password": secrets.token_urlsafe(12),
            "webhook": "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode(),
        }
        self.save()
        for folder in (self.home, self.logs, self.run_dir, self.destination, self.root / "redis"):
            folder.mkdir(parents=True, exist_ok=True)
        self.password_file.write_text(json.dumps({"airflow": self.secrets["password"]}))
        self.password_file.chmod(0o600)
        self.spawn("redis")
        self.spawn("simulator")
        self.start_postgres()
        self.timings["postgres"] = time.monotonic() - started
        migrate = subprocess.run(
            [AIRFLOW, "db", "migrate"], env=self.env(), capture_output=True, text=True, check=False
        )
        (self.logs / "db-migrate.log").write_text(migrate.stdout + migrate.stderr)
        if migrate.returncode != 0:
            raise SystemExit(f"airflow db migrate failed: see {self.logs / 'db-migrate.log'}")
        self.timings["db migrate"] = time.monotonic() - started
        for name in self.components:
            self.spawn(name)
        self.wait_healthy(timeout=timeout - (time.monotonic() - started))
        self.timings["healthy"] = time.monotonic() - started
        if "webhook" in self.secrets:
            self.configure_webhooks()

    @property
    def webhook_url(self) -> str:
        return f"{self.ui_url}/codat/webhooks"

    def configure_webhooks(self, **options) -> None:
        """Point the simulator's webhooks at the api-server's receiver, signed with the stack's secret.

        :param options: more ``configure_webhooks`` arguments (``retry_seconds``, ``duplicates``, ...).
        """
        response = httpx.post(
            f"{self.simulator_url}/_simulator/configure_webhooks",
            json={"url": self.webhook_url, "secret": self.secrets["webhook"], **options},
            timeout=30,
        )
        response.raise_for_status()

    def stop_postgres(self) -> None:
        """Stop the database (``pg_ctl stop -m fast``: open sessions end), as an outage would."""
        stop_cluster(self.pgdata)

    def start_postgres(self) -> None:
        """Start the database (creating the cluster the first time)."""
        shared = shared_settings()
        start_cluster(
            self.pgdata,
            port=self.ports["postgres"],
            user=shared["POSTGRES_USER"],
            password=shared["POSTGRES_PASSWORD"],
            database=shared["POSTGRES_DB"],
            logs=self.logs,
        )

    def wait_healthy(self, *, timeout: float) -> None:
        """Until the api-server reports the scheduler, dag-processor and triggerer healthy and both workers
        have said they are ready; fail naming what did not come up (and its log)."""
        deadline = time.monotonic() + max(timeout, 10)
        pending = {"simulator", *self.components}
        while pending and time.monotonic() < deadline:
            for name in ["redis", "simulator", *self.components]:
                if self.pid(name) is None:
                    raise SystemExit(f"{name} exited: see {self.logs / (name + '.log')}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.simulator_url}/_simulator/now", timeout=5).status_code == 200:
                    pending.discard("simulator")
            try:
                health = httpx.get(f"{self.ui_url}/api/v2/monitor/health", timeout=5).json()
                pending.discard("api-server")
                for part, name in (("scheduler", "scheduler"), ("dag_processor", "dag-processor")):
                    if health.get(part, {}).get("status") == "healthy":
                        pending.discard(name)
                if health.get("triggerer", {}).get("status") == "healthy":
                    pending.discard("triggerer")
            except (httpx.HTTPError, ValueError):
                pass
            for worker in ("worker-1", "worker-2"):
                log = self.logs / f"{worker}.log"
                if worker in pending and log.exists() and " ready." in log.read_text(errors="replace"):
                    pending.discard(worker)
            if pending:
                time.sleep(1)
        if pending:
            raise SystemExit(
                f"Not healthy in time: {', '.join(sorted(pending))}; logs in {self.logs}. `make stack-stop`."
            )

    def stop(self, *, timeout: float = 20) -> list[str]:
        """Stop what ``start`` started: SIGTERM to every process group at once, SIGKILL to what is left after
        ``timeout``, then Postgres (fast shutdown); return the names stopped."""
        groups = {name: self.pid(name) for name in [*AIRFLOW_COMPONENTS, "simulator", "redis"]}
        groups = {name: pid for name, pid in groups.items() if pid is not None}
        stop_groups(list(groups.values()), timeout)
        for name in [*AIRFLOW_COMPONENTS, "simulator", "redis"]:
            self.pid_file(name).unlink(missing_ok=True)
        stopped = list(groups)
        if self.pid("postgres") is not None:
            stop_cluster(self.pgdata)
            stopped.append("postgres")
        return stopped

    def status(self) -> dict[str, int | None]:
        return {name: self.pid(name) for name in ("postgres", "redis", "simulator", *AIRFLOW_COMPONENTS)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("action", choices=("start", "stop", "status", "env"))
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="the stack's folder (default .stack)")
    parser.add_argument("--companies", type=int, default=5, help="simulator companies (start)")
    parser.add_argument("--sync-seconds", type=float, default=10.0, help="simulated sync duration (start)")
    args = parser.parse_args(argv)
    root = args.dir.resolve()
    if args.action == "start":
        stack = Stack(root=root, companies=args.companies, sync_seconds=args.sync_seconds)
        stack.start()
        print(
            f"Airflow (Celery, Postgres, Redis) started in {root} ("
            + ", ".join(f"{stage} at {seconds:.0f} s" for stage, seconds in stack.timings.items())
            + ")\n"
            f"  UI and REST API: {stack.ui_url}  (log in as airflow, password {stack.secrets['password']};\n"
            f"                   also in {stack.password_file})\n"
            f"  Codat simulator: {stack.simulator_url} ({stack.companies} companies)\n"
            f"  Logs:            {stack.logs}\n"
            f'  Airflow CLI:     eval "$({_python()} tools/stack.py env)"; airflow dags list\n'
            "  Stop:            make stack-stop",
            flush=True,
        )
        return 0
    stack = Stack.load(root)
    if args.action == "stop":
        stopped = stack.stop()
        print(f"Stopped: {', '.join(stopped) if stopped else 'nothing was running'}.")
    elif args.action == "status":
        for name, pid in stack.status().items():
            print(f"{name:14} {'pid ' + str(pid) if pid else 'stopped'}")
    else:
        for key, value in sorted(stack.env().items()):
            if key.startswith(("AIRFLOW", "CODAT_")):
                print(f"export {key}={_shell_quote(value)}")
    return 0


def _python() -> str:
    """This interpreter, relative to the checkout when it is the project's venv."""
    python = Path(sys.executable)
    return str(python.relative_to(ROOT)) if python.is_relative_to(ROOT) else str(python)


def _shell_quote(value: str) -> str:
    import shlex

    return shlex.quote(value)


if __name__ == "__main__":
    sys.exit(main())
