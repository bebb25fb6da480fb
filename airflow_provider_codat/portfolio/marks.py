"""What Codat said it synced, per company and data type: the sweep's record of what it need not poll.

A mark is the latest Codat instant (a ``read.completed``'s ``generatedDate``, or a ``lastSuccessfulSync`` the
sweep saw) through which a (company, data type) is known to be landed: every sync Codat completed by then was
either read (its records changed) or announced with nothing changed. The sweep polls only companies whose
``lastSync`` is later than one of their marks (``portfolio/sweep.py``).

Beside the landing, in files a reader of the landing never takes for data::

    {destination}/_portfolio/heard.json.gz          every mark, folded by the sweep
    {destination}/_portfolio/heard/{run}.json       the marks one window run added (folded, then removed)

A window writes one small file; the sweep folds them into one. A later instant always wins, so folding in any
order, twice, or after a crash gives the same marks.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
from collections.abc import Mapping
from typing import Any

from airflow.sdk import ObjectStoragePath

from airflow_provider_codat.landing.destination import destination_path
from airflow_provider_codat.landing.layout import run_folder_name
from airflow_provider_codat.landing.manifest import replace_file
from airflow_provider_codat.landing.records import instant_key

log = logging.getLogger(__name__)

FOLDER = "_portfolio"
FOLDED = "heard.json.gz"
WINDOWS = "heard"

Marks = dict[str, dict[str, str]]


def _root(destination: Any) -> ObjectStoragePath:
    return destination_path(destination) / FOLDER


def add_marks(marks: Marks, more: Mapping[str, Mapping[str, str]]) -> Marks:
    """``marks`` with ``more`` folded in (in place): per company and type, the later instant wins."""
    for company, types in more.items():
        known = marks.setdefault(company, {})
        for data_type, instant in types.items():
            if instant and (data_type not in known or _key(instant) > _key(known[data_type])):
                known[data_type] = instant
    return marks


def _key(instant: str) -> str:
    try:
        return instant_key(instant)
    except Exception:
        return ""


def write_window_marks(destination: Any, run_id: str, marks: Mapping[str, Mapping[str, str]]) -> str | None:
    """Write the marks one run adds (one file, named from the run id); its URI, or ``None`` when empty."""
    if not marks:
        return None
    folder = _root(destination) / WINDOWS
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / (run_folder_name(run_id).removeprefix("run=") + ".json")
    replace_file(target, json.dumps(marks, separators=(",", ":"), sort_keys=True).encode())
    return str(target)


def read_marks(destination: Any) -> tuple[Marks, list[ObjectStoragePath]]:
    """Every mark: the folded file and the window files not yet folded (which are returned, to fold)."""
    root = _root(destination)
    marks: Marks = {}
    folded = root / FOLDED
    if folded.exists():
        add_marks(marks, json.loads(gzip.decompress(folded.read_bytes())))
    windows: list[ObjectStoragePath] = []
    folder = root / WINDOWS
    if folder.exists():
        for path in sorted(folder.iterdir(), key=lambda p: p.name):
            if path.name.endswith(".json") and not path.name.startswith("."):
                add_marks(marks, json.loads(path.read_text()))
                windows.append(path)
    return marks, windows


def fold_marks(destination: Any, more: Mapping[str, Mapping[str, str]] | None = None) -> Marks:
    """Fold the window files (and ``more``) into ``heard.json.gz``, then remove the files folded."""
    marks, windows = read_marks(destination)
    add_marks(marks, more or {})
    root = _root(destination)
    root.mkdir(parents=True, exist_ok=True)
    body = json.dumps(marks, separators=(",", ":"), sort_keys=True).encode()
    replace_file(root / FOLDED, gzip.compress(body, compresslevel=6))
    for path in windows:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    log.info("Folded %d window mark files: marks for %d companies", len(windows), len(marks))
    return marks
