"""The start of every test on the production topology (tools/stack.py): opted in with ``CODAT_E2E=1``, the
Debian packages present, and a root folder that the postgres user can enter."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from stack import missing_packages


def stack_root(what: str, prefix: str) -> Path:
    """A new folder for a stack, after skipping unless ``CODAT_E2E=1`` and failing when a package is missing.

    :param what: the test, as the skip reason names it.
    :param prefix: the folder's name prefix.
    """
    if os.environ.get("CODAT_E2E") != "1":
        pytest.skip(f"{what} runs with CODAT_E2E=1 (CI sets it)")
    missing = missing_packages()
    if missing:
        pytest.fail(
            f"CODAT_E2E=1 but Debian's {' and '.join(missing)} is missing: apt-get install {' '.join(missing)}"
        )
    # Postgres runs as the postgres user when this is root: a folder it can enter (pytest's are 0700).
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)
    return root
