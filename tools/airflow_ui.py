"""`make airflow`: the Airflow UI with the example DAGs, against a local Codat simulator, on SQLite.

Starts the simulator (unless ``--connection`` points elsewhere) and ``airflow standalone`` (api-server,
scheduler, dag-processor, triggerer) with the same settings as `make demo`, in a project-local
``AIRFLOW_HOME`` (``.airflow/``). Open http://127.0.0.1:8080: no login (every local user is an admin), the
``codat_*`` DAGs are paused until you trigger or unpause them. The simulator signs a webhook to
``/codat/webhooks`` whenever one of its syncs finishes: unpause ``codat_on_change`` to see it extract what
changed with no polling. Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from local_airflow import AIRFLOW, ROOT, airflow_env


def standalone_env(home: Path, *, port: int, connection_json: str, poke_interval: float) -> dict[str, str]:
    """The environment of ``airflow standalone``: the demo's settings plus the web server's."""
    return airflow_env(
        home,
        connection_json=connection_json,
        destination=home / "codat-data",
        poke_interval=poke_interval,
        extra={
            "AIRFLOW__API__HOST": os.environ.get("CODAT_UI_HOST", "127.0.0.1"),
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            # Workers report to the api-server's execution API, wherever it listens.
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            # A local playground: no login; bound to 127.0.0.1 unless CODAT_UI_HOST says otherwise.
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            # The Codat sync sensors defer, so the triggerer does the waiting (watch them in the grid).
            "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "True",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            # Pick up the DAG files quickly after a change.
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        },
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--home", type=Path, default=ROOT / ".airflow", help="AIRFLOW_HOME (default .airflow)"
    )
    parser.add_argument("--port", type=int, default=8080, help="the UI and REST API port")
    parser.add_argument("--connection", help="codat_default as JSON (default: a simulator started here)")
    parser.add_argument("--simulator-port", type=int, default=8765)
    parser.add_argument("--companies", type=int, default=5)
    parser.add_argument("--sync-seconds", type=float, default=10.0, help="simulated sync duration")
    args = parser.parse_args(argv)

    home: Path = args.home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    simulator = None
    connection_json = args.connection
    if connection_json is None:
        from airflow_provider_codat.simulator import SimulatorState, run_in_thread

        state = SimulatorState(companies=args.companies, sync_seconds=args.sync_seconds)
        simulator = run_in_thread(state, port=args.simulator_port)
        # Finished syncs are announced to this Airflow's webhook receiver (codat_on_change, zero polling); the
        # connection then carries the signing secret.
        simulator.control.configure_webhooks(f"http://127.0.0.1:{args.port}/codat/webhooks")
        connection_json = simulator.connection_json
        print(f"Codat simulator on {simulator.base_url} (API key {simulator.api_key})", flush=True)

    env = standalone_env(home, port=args.port, connection_json=connection_json, poke_interval=5)
    print(
        f"Airflow home {home}; UI on http://127.0.0.1:{args.port} once 'standalone' says it is ready.",
        flush=True,
    )
    proc = subprocess.Popen([AIRFLOW, "standalone"], env=env, start_new_session=True)

    def stop(signum, frame):  # forward Ctrl-C / SIGTERM to the whole standalone process group
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        return proc.wait()
    finally:
        stop(None, None)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        if simulator is not None:
            simulator.stop()


if __name__ == "__main__":
    sys.exit(main())
