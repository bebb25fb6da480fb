"""Names in the landing: a type's folder, its run folders (an extract's, a reconcile's), part files and the files
that record commits.

```
{destination}/{company_id}/{data_type}/_state.json                      the extract's commit record (last)
{destination}/{company_id}/{data_type}/run={run}/_manifest.json         the run committed: its summary, files
{destination}/{company_id}/{data_type}/run={run}/part-00000.jsonl.gz    its records, gzipped JSON lines
{destination}/{company_id}/{data_type}/run=reconcile__{run}/...         the run's reconcile (some types)
```

Airflow run ids carry ``:`` and ``+`` (``manual__2026-11-26T18:46:30.799815+00:00``). Spark and Hadoop refuse
``:`` in a path, ``+`` reads as a space once a path goes through a URL, and ``=`` or ``/`` would add a
partition level. So a run folder keeps only ``[A-Za-z0-9._-]`` of the run id; when anything had to be
replaced, a short digest of the whole run id follows, so that two run ids never share a folder.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

from airflow_provider_codat.datatypes import Kind, get_data_type

STATE_FILE = "_state.json"
MANIFEST = "_manifest.json"
RUN_FOLDER_PREFIX = "run="
RECONCILE_RUN_PREFIX = "reconcile__"
STAGED_SUFFIX = ".tmp"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_DIGEST_LENGTH = 10
# The ending a replaced run id gets; a run id that already ends like this gets a digest too, so that it
# cannot be mistaken for another run id's replaced form.
_DIGEST_SUFFIX = re.compile(rf"-h[0-9a-f]{{{_DIGEST_LENGTH}}}$")


def run_folder_name(run_id: str) -> str:
    """The folder a run writes its part files to: ``run={safe run id}``.

    Safe run ids (``scheduled__2026-11-26``, ``backfill-3``) are kept as they are. Otherwise ``:`` becomes
    ``-``, every other unsafe character ``_``, and ``-h`` plus the first 10 hex digits of the run id's SHA-256
    are appended: ``manual__2026-11-26T18:46:30.799815+00:00`` lands in
    ``run=manual__2026-11-26T18-46-30.799815_00-00-h<digest>``. The same run id always gives the same name
    (a retry rewrites its own folder), and distinct run ids give distinct names.

    :param run_id: the Airflow run id.
    """
    if not run_id:
        raise ValueError("A run id is needed to name the run folder.")
    safe = _UNSAFE.sub("_", run_id.replace(":", "-"))
    if safe == run_id and not _DIGEST_SUFFIX.search(run_id):
        return RUN_FOLDER_PREFIX + run_id
    digest = hashlib.sha256(run_id.encode("utf-8")).hexdigest()[:_DIGEST_LENGTH]
    return f"{RUN_FOLDER_PREFIX}{safe}-h{digest}"


def reconcile_run_id(run_id: str) -> str:
    """The run id a reconcile of run ``run_id`` lands under (its run folder is named from it).

    :param run_id: the Airflow run id of the extract.
    """
    return RECONCILE_RUN_PREFIX + run_id


def reconcilable_types(data_types: Sequence[str]) -> list[str]:
    """The keys among ``data_types`` that get a reconcile run: paged (incremental or read whole), without
    ``metadata.isDeleted``.

    :param data_types: catalogue keys.
    """
    entries = [get_data_type(key) for key in data_types]
    return [e.key for e in entries if e.kind is not Kind.SNAPSHOT and not e.has_deleted_flag]


def run_folders(data_type: str, run_id: str) -> list[str]:
    """The folders what run ``run_id`` landed of ``data_type`` is in: its own, and its reconcile's for the types
    that have one.

    :param data_type: the catalogue key.
    :param run_id: the Airflow run id.
    """
    folders = [run_folder_name(run_id)]
    if reconcilable_types([data_type]) and not run_id.startswith(RECONCILE_RUN_PREFIX):
        folders.append(run_folder_name(reconcile_run_id(run_id)))
    return folders


def part_name(index: int) -> str:
    """The name of a run's part file number ``index``: ``part-00000.jsonl.gz``."""
    return f"part-{index:05d}.jsonl.gz"


def staging_name(token: str, index: int) -> str:
    """The name a part file has until its run commits: hidden, and matching no reader's glob for data."""
    return f".{token}.{part_name(index)}{STAGED_SUFFIX}"
