"""Which runs a table holds: written into each merge's own commit (Delta's ``commitInfo``), read back from
the table's history.

Every merge commit carries ``codat_runs``: ``{run folder: [company ids]}``. It is part of the same atomic
commit as the rows, so a task killed after the commit and before it could report finds, on its retry, that
the run is held and merges nothing. (The merge is idempotent by itself, see :mod:`.merge`; this record makes
a second merge free and lets anyone audit the table.)
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deltalake import DeltaTable

RUNS_KEY = "codat_runs"


def runs_metadata(runs: dict[str, list[str]]) -> dict[str, str]:
    """The commit's custom metadata for ``{run folder: [company ids]}``."""
    return {RUNS_KEY: json.dumps(runs, sort_keys=True, separators=(",", ":"))}


def held_runs(table: DeltaTable) -> dict[tuple[str, str], dict[str, Any]]:
    """``{(company id, run folder): the commit that merged it}`` over the table's history.

    :param table: the Delta table.
    """
    held: dict[tuple[str, str], dict[str, Any]] = {}
    for commit in reversed(table.history()):  # oldest first, so that the first merge of a run is kept
        recorded = commit.get(RUNS_KEY)
        if not recorded:
            continue
        for run_folder, companies in json.loads(recorded).items():
            for company_id in companies:
                held.setdefault((company_id, run_folder), commit)
    return held
