"""Which months one delta-rs ``MERGE`` rewrites: a merge that touches many months is committed as several, each
rewriting at most :data:`MERGE_BYTES` of Parquet (one month at least).

delta-rs's memory grows with what one ``MERGE`` reads and rewrites (its allocator keeps the pages it freed for
seconds), so a batch whose changes were spread over 24 months held 1.9 GB where one touching two held 0.9 GB
(``bench/tables.py``). Merged a few months at a time, each commit reuses the memory of the one before it:
the spread batch peaked at the two-month figure, in the same time.

Only the last commit records the runs (:mod:`.history`), so a merge killed between its commits is merged again
in full; the commits it made change nothing the second time, a row being replaced only by a newer version.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from airflow_provider_codat.tables import key as k

MERGE_BYTES = 24 * 1024 * 1024


def month_groups(table: DeltaTable, months: Sequence[str], limit: int | None = None) -> list[list[str]]:
    """``months`` (sorted) in consecutive groups whose files hold at most ``limit`` bytes together, a month
    larger than that on its own.

    :param table: the Delta table (its log says how large each month's files are).
    :param months: the months the merge touches.
    :param limit: the Parquet bytes one commit rewrites at most; ``None``: :data:`MERGE_BYTES`.
    """
    limit = MERGE_BYTES if limit is None else limit
    sizes = _month_bytes(table)
    groups: list[list[str]] = []
    held = 0
    for month in sorted(months):
        size = sizes.get(month, 0)
        if not groups or held + size > limit:
            groups.append([])
            held = 0
        groups[-1].append(month)
        held += size
    return groups


def _month_bytes(table: DeltaTable) -> dict[str, int]:
    files = pa.table(table.get_add_actions(flatten=True))
    column = f"partition.{k.MONTH}"
    if files.num_rows == 0 or column not in files.column_names:
        return {}
    totals = files.group_by(column).aggregate([("size_bytes", "sum")])
    return dict(zip(totals[column].to_pylist(), totals["size_bytes_sum"].to_pylist(), strict=True))


def rows_of(source: pa.Table, months: Sequence[str]) -> pa.Table:
    """The rows of ``source`` placed in ``months``."""
    return source.filter(pc.is_in(source.column(k.MONTH), value_set=pa.array(months, pa.string())))
