"""docker-compose.yaml and the Dockerfile: valid for docker-compose, and wired the way the README says.

No Docker engine runs here, so nothing is built or started: ``docker-compose config`` validates and resolves
the file, and the checks below read the resolved configuration.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote

import pytest
import yaml
from sqlalchemy.engine import make_url
from stack import Stack, shared_settings  # tools/, on pytest's pythonpath

from airflow_provider_codat.simulator import DEFAULT_API_KEY

# One worker runs this module: its module-scoped fixture is costly to build (pytest-xdist --dist loadgroup).
pytestmark = pytest.mark.xdist_group("test_compose")

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW_SERVICES = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery worker",
}


MISSING_DOCKER_COMPOSE = (
    "no docker-compose binary on PATH: these tests validate docker-compose.yaml with `docker-compose config` "
    "(no Docker engine needed); install it with `apt-get install docker-compose` (.ci/run does)"
)


def _compose_config(extra_env: dict[str, str] | None = None) -> dict:
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.skip(MISSING_DOCKER_COMPOSE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CODAT_", "AIRFLOW_"))}
    env.update(extra_env or {})
    proc = subprocess.run(
        [exe, "--file", str(ROOT / "docker-compose.yaml"), "config"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return yaml.safe_load(proc.stdout)


@pytest.fixture(scope="module")
def config() -> dict:
    return _compose_config()


def _command(service: dict) -> str:
    command = service.get("command")
    return " ".join(command) if isinstance(command, list) else str(command)


def test_the_official_airflow_3_services_are_all_there(config):
    services = config["services"]
    assert {"postgres", "redis", "airflow-init", "codat-simulator", *AIRFLOW_SERVICES} <= set(services)
    for name, command in AIRFLOW_SERVICES.items():
        assert _command(services[name]) == command, name
        # Nothing starts before the database is migrated.
        assert services[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
        assert services[name]["depends_on"]["codat-simulator"]["condition"] == "service_healthy"
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql")
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    assert services["airflow-init"]["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"


def test_compose_and_make_stack_give_every_component_the_settings_of_airflow_env(config, tmp_path):
    shared = shared_settings()
    assert shared["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    services = config["services"]
    for name in [*AIRFLOW_SERVICES, "airflow-init"]:
        env = services[name]["environment"]
        assert {key: env.get(key) for key in shared} == shared, name
    stack = Stack(
        root=tmp_path, ports=dict.fromkeys(["postgres", "redis", "simulator", "api"], 1), secrets={}
    )
    stack.ports.update({"scheduler-health": 2, "triggerer-logs": 3, "worker-1-logs": 4})
    stack.secrets.update(jwt="j", api="a", simulator_key="k", password="p")
    for component in ("scheduler", "worker-1", None):
        env = stack.env(component)
        assert {key: env.get(key) for key in shared} == shared, component
    # Both metadata databases are the one airflow.env describes (the postgres service reads it too).
    assert {
        key: services["postgres"]["environment"][key] for key in shared if key.startswith("POSTGRES_")
    } == {key: value for key, value in shared.items() if key.startswith("POSTGRES_")}
    for env in (services["airflow-scheduler"]["environment"], stack.env("scheduler")):
        for key in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__RESULT_BACKEND"):
            url = make_url(env[key].removeprefix("db+"))
            assert url.drivername == "postgresql+psycopg2", key  # the driver the stack extra installs
            assert (url.username, url.password, url.database) == (
                shared["POSTGRES_USER"],
                shared["POSTGRES_PASSWORD"],
                shared["POSTGRES_DB"],
            )


def test_every_airflow_service_runs_the_provider_image_with_the_dags_mounted(config):
    services = config["services"]
    images = {services[name]["image"] for name in [*AIRFLOW_SERVICES, "airflow-init", "codat-simulator"]}
    assert len(images) == 1, images
    for name in [*AIRFLOW_SERVICES, "airflow-init", "codat-simulator"]:
        build = services[name]["build"]
        context = Path(build["context"] if isinstance(build, dict) else build)
        assert context.resolve() == ROOT, name
    for name in AIRFLOW_SERVICES:
        mounts = [
            str(v) if isinstance(v, str) else f"{v['source']}:{v['target']}"
            for v in services[name]["volumes"]
        ]
        assert any(
            m.startswith(str(ROOT / "dags") + ":") and m.split(":")[1] == "/opt/airflow/dags" for m in mounts
        ), (
            name,
            mounts,
        )


def test_the_dockerfile_builds_on_the_airflow_we_test_with_and_installs_the_provider():
    dockerfile = (ROOT / "Dockerfile").read_text()
    base = re.search(r"^FROM\s+(\S+)", dockerfile, re.MULTILINE).group(1)
    # The image is the Airflow that constraints.txt pins (the main venv's, and `make stack`'s); the other
    # minors' venvs (constraints/airflow-*.txt) run this suite against the same Dockerfile.
    pinned = re.search(
        r"^apache-airflow==(\S+)$", (ROOT / "constraints.txt").read_text(), re.MULTILINE
    ).group(1)
    assert base == f"apache/airflow:{pinned}-python3.11"
    assert re.search(
        r"pip install .*\"apache-airflow==\$\{AIRFLOW_VERSION\}\" /opt/airflow-provider-codat", dockerfile
    )
    copied = re.findall(r"^COPY\s+(?:--\S+\s+)*(.+?)\s+\S+$", dockerfile, re.MULTILINE)
    for sources in copied:
        for source in sources.split():
            assert (ROOT / source).exists(), f"the Dockerfile copies {source}, which is not in the repo"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored


def _codat_connection(config: dict) -> tuple[str, str]:
    """The (base URL, API key) that codat_default resolves to in the worker, as Airflow parses it."""
    from airflow.models.connection import Connection

    value = config["services"]["airflow-worker"]["environment"]["AIRFLOW_CONN_CODAT_DEFAULT"]
    conn = Connection.from_json(value) if value.lstrip().startswith("{") else Connection(uri=value)
    assert conn.conn_type == "codat"
    return unquote(conn.host or ""), conn.password


def test_codat_default_points_at_the_simulator_service(config):
    host, key = _codat_connection(config)
    simulator = config["services"]["codat-simulator"]
    port = _command(simulator).split("--port ")[1].split()[0]
    assert host == f"http://codat-simulator:{port}"
    assert key == DEFAULT_API_KEY
    assert "python -m airflow_provider_codat.simulator" in " ".join(simulator["entrypoint"])
    assert "--host 0.0.0.0" in _command(simulator)
    # Sensors defer, so the triggerer is the one that waits.
    assert (
        config["services"]["airflow-triggerer"]["environment"]["AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE"]
        == "true"
    )


def test_one_variable_switches_to_the_real_codat():
    real = '{"conn_type": "codat", "password": "my-real-key"}'
    config = _compose_config({"CODAT_CONNECTION": real})
    for name in [*AIRFLOW_SERVICES, "airflow-init"]:
        assert config["services"][name]["environment"]["AIRFLOW_CONN_CODAT_DEFAULT"] == real, name
    host, key = _codat_connection(config)
    assert (host, key) == ("", "my-real-key")  # empty host: the hook's default, https://api.codat.io


def test_the_simulator_service_command_answers_its_healthcheck(config):
    """Run the codat-simulator service's own command line here (on a free port) and its healthcheck."""
    service = config["services"]["codat-simulator"]
    args = [*service["entrypoint"], *service["command"]]
    assert args[:3] == ["python", "-m", "airflow_provider_codat.simulator"]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    args[args.index("--host") + 1] = "127.0.0.1"
    compose_port = args[args.index("--port") + 1]
    args[args.index("--port") + 1] = str(port)
    check = [part.replace(f":{compose_port}/", f":{port}/") for part in service["healthcheck"]["test"][1:]]
    assert check[0] == "python"
    proc = subprocess.Popen([sys.executable, *args[1:]], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300  # a hang guard: start-up takes minutes on a loaded machine
        while True:
            probe = subprocess.run([sys.executable, *check[1:]], capture_output=True, timeout=30, check=False)
            if probe.returncode == 0:
                break
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, probe.stderr.decode()
            time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
