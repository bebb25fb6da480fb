"""Names in the landing: the run folder of one extract run.

Airflow run ids carry ``:`` and ``+`` (``manual__2026-11-26T18:46:30.799815+00:00``). Spark and Hadoop refuse
``:`` in a path, ``+`` reads as a space once a path goes through a URL, and ``=`` or ``/`` would add a
partition level. So a run folder keeps only ``[A-Za-z0-9._-]`` of the run id; when anything had to be
replaced, a short digest of the whole run id follows, so that two run ids never share a folder.
"""

from __future__ import annotations

import hashlib
import re

RUN_FOLDER_PREFIX = "run="
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
