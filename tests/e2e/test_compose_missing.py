"""`CODAT_E2E=1 make test` on a machine without docker-compose: the compose checks skip, saying why, and
nothing fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_compose_checks_skip_with_the_reason_when_docker_compose_is_absent(tmp_path):
    env = {**os.environ, "CODAT_E2E": "1", "PATH": str(tmp_path)}  # a PATH with no docker-compose on it
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/e2e/test_compose.py", "-q", "-rs", "-p", "no:cacheprovider"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert " failed" not in proc.stdout and " error" not in proc.stdout
    assert "no docker-compose binary on PATH" in proc.stdout
    assert "apt-get install docker-compose" in proc.stdout
