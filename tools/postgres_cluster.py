"""A Postgres cluster of Debian's ``postgresql`` in a folder of its own, for tools/stack.py: ``initdb`` once,
``pg_ctl start``/``stop``, loopback TCP only (no Unix socket), on the port given."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

# Postgres refuses to run as root; as root the cluster belongs to this system user (Debian's package makes it).
POSTGRES_SYSTEM_USER = "postgres"


def postgres_bin(name: str) -> str | None:
    """``initdb``/``pg_ctl``: on the PATH, else in Debian's versioned folder (newest version)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(
        Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parts[-3]), reverse=True
    )
    return str(candidates[0]) if candidates else None


def as_postgres_owner(args: list[str]) -> list[str]:
    """The command run as the cluster's owner: this user, or ``postgres`` when this is root."""
    if os.geteuid() != 0:
        return args
    return [
        "setpriv",
        f"--reuid={POSTGRES_SYSTEM_USER}",
        f"--regid={POSTGRES_SYSTEM_USER}",
        "--init-groups",
        *args,
    ]


def start_cluster(pgdata: Path, *, port: int, user: str, password: str, database: str, logs: Path) -> None:
    """Create the cluster in ``pgdata`` (first time: ``initdb`` with ``user``/``password``, then ``database``)
    and start it on ``127.0.0.1:port`` with ``pg_ctl``, its log in ``logs/postgres.log``."""
    pgdata.mkdir(parents=True, exist_ok=True)
    closed = [str(p) for p in pgdata.parents if not p.stat().st_mode & 0o001]
    if os.geteuid() == 0 and closed:
        raise SystemExit(
            f"Postgres runs as the '{POSTGRES_SYSTEM_USER}' user, who cannot enter {closed[0]}: "
            "put the stack in a folder every user can traverse (chmod o+x), e.g. under /tmp."
        )
    if os.geteuid() == 0:
        shutil.chown(pgdata, POSTGRES_SYSTEM_USER, POSTGRES_SYSTEM_USER)
    pgdata.chmod(0o700)
    fresh = not (pgdata / "PG_VERSION").exists()
    if fresh:
        _initdb(pgdata, user=user, password=password, logs=logs)
    log = logs / "postgres.log"
    log.touch()
    if os.geteuid() == 0:
        shutil.chown(log, POSTGRES_SYSTEM_USER)
    options = (
        f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
        "-c fsync=off -c max_connections=200"
    )
    started = subprocess.run(
        as_postgres_owner(
            [postgres_bin("pg_ctl"), "-D", str(pgdata), "-l", str(log), "-o", options, "-w", "start"]
        ),
        capture_output=True,
        text=True,
        check=False,
    )
    if started.returncode != 0:
        raise SystemExit(f"pg_ctl start failed: {started.stdout}{started.stderr} (see {log})")
    if fresh:
        _create_database(port=port, user=user, password=password, database=database)


def _initdb(pgdata: Path, *, user: str, password: str, logs: Path) -> None:
    """``initdb`` a new cluster in ``pgdata`` with ``user``/``password`` (the password never on a command line)."""
    pwfile = logs / ".pgpass.tmp"
    pwfile.write_text(password + "\n")
    if os.geteuid() == 0:
        shutil.chown(pwfile, POSTGRES_SYSTEM_USER)
    init = subprocess.run(
        as_postgres_owner(
            [
                postgres_bin("initdb"),
                "-D",
                str(pgdata),
                "-U",
                user,
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--no-sync",
            ]
        ),  # fmt: skip
        capture_output=True,
        text=True,
        check=False,
    )
    pwfile.unlink()
    (logs / "initdb.log").write_text(init.stdout + init.stderr)
    if init.returncode != 0:
        raise SystemExit(f"initdb failed: see {logs / 'initdb.log'}")


def stop_cluster(pgdata: Path) -> None:
    """``pg_ctl stop`` (fast: open sessions are ended)."""
    subprocess.run(
        as_postgres_owner([postgres_bin("pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop"]),
        capture_output=True,
        check=False,
        timeout=60,
    )


def _create_database(*, port: int, user: str, password: str, database: str) -> None:
    import psycopg2

    conn = psycopg2.connect(
        host="127.0.0.1",
        port=port,
        user=user,
        password=password,
        dbname="postgres",
    )
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{database}"')
    conn.close()
