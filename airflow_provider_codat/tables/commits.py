"""How a merge writes to a Delta table: its files, the runs each commit records, the schema widened before the
rows, and the months one commit rewrites.

**Files.** Parquet is written Snappy-compressed, in row groups of :data:`ROW_GROUP_ROWS` rows. delta-rs holds a
whole row group in memory while it writes one, and its default (about a million rows) made a merge that
rewrites a month of a 10-million-row table pass 1 GB. Smaller groups keep the writer's memory flat; readers lose
nothing (a file's groups are read in parallel, and their statistics still skip by company). Properties given
explicitly replace all of delta-rs's defaults, compression included: without ``compression`` the files came out
uncompressed, four times the size, and a merge read and buffered four times the bytes. Snappy is what Spark and
delta-rs write by default, and of the codecs every reader takes, the quickest here.

**Runs held.** Every merge commit carries ``codat_runs`` (Delta's ``commitInfo``): ``{run folder: [company
ids]}``. It is part of the same atomic commit as the rows, so a task killed after the commit and before it could
report finds, on its retry, that the run is held and merges nothing. (The merge is idempotent by itself, see
:mod:`.merge`; this record makes a second merge free and lets anyone audit the table.)

**Widening.** delta-rs's MERGE can widen a schema itself (``merge_schema``), but a struct it widens that way
comes out null in every row the merge copies unchanged (deltalake 1.6), losing data. So the table is widened
first, by a commit of no rows, and each batch is then made to match the table's schema before the merge.

**Months per commit.** A merge that touches many months is committed as several, each rewriting at most
:data:`MERGE_BYTES` of Parquet (one month at least). delta-rs's memory grows with what one ``MERGE`` reads and
rewrites (its allocator keeps the pages it freed for seconds), so a batch whose changes were spread over 24
months held 1.9 GB where one touching two held 0.9 GB (``bench/tables.py``). Merged a few months at a time, each
commit reuses the memory of the one before it: the spread batch peaked at the two-month figure, in the same
time. Only the last commit records the runs, so a merge killed between its commits is merged again in full; the
commits it made change nothing the second time, a row being replaced only by a newer version.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, WriterProperties, write_deltalake

from airflow_provider_codat.errors import CodatTableError
from airflow_provider_codat.tables import key as k

log = logging.getLogger(__name__)

# --- files ---------------------------------------------------------------------------------------------------

ROW_GROUP_ROWS = 64 * 1024
COMPRESSION = "SNAPPY"


def writer_properties() -> WriterProperties:
    """The properties every merge and compaction writes with."""
    return WriterProperties(max_row_group_size=ROW_GROUP_ROWS, compression=COMPRESSION)


# --- runs held --------------------------------------------------------------------------------------------------

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


# --- widening ---------------------------------------------------------------------------------------------------


def widened(table: DeltaTable, source: pa.Schema) -> DeltaTable:
    """``table``, its schema first widened by the fields of ``source`` it lacks (a commit of no rows).

    :param table: the Delta table.
    :param source: the schema of the batch to merge.
    :raises CodatTableError: a field the table and the batch type differently (a table from an older spec).
    """
    current = pa.schema(table.schema())
    try:
        wider = pa.unify_schemas([current, source])
    except pa.ArrowTypeError as exc:  # a field the table holds as text that a newer spec types (an upgrade)
        raise CodatTableError(
            f"The table {table.table_uri} cannot take this merge: {exc}. The table was written by a provider "
            "version whose spec typed this field otherwise; nothing was merged. Rebuild the table from the "
            "landing with this version (docs/tables.md, 'Rebuild a table from the landing')."
        ) from None
    if wider.equals(current):
        return table
    write_deltalake(table, wider.empty_table(), mode="append", schema_mode="merge")
    table.update_incremental()
    wider_columns = [field.name for field in wider if field not in current]
    log.info("Widened %s for fields Codat added, in the columns %s", table.table_uri, wider_columns)
    return table


def matching(source: pa.Table, table: DeltaTable) -> pa.Table:
    """``source`` in ``table``'s schema: null columns for those it lacks (a field an earlier batch added), and
    nested columns whose structs lack fields cast to the table's (the missing fields null).

    :param source: the batch to merge.
    :param table: the Delta table, already :func:`widened`.
    """
    for target in pa.schema(table.schema()):
        if target.name not in source.column_names:
            source = source.append_column(target, pa.nulls(source.num_rows, target.type))
        elif source.schema.field(target.name).type != target.type and pa.types.is_nested(target.type):
            index = source.schema.get_field_index(target.name)
            source = source.set_column(index, target, source.column(index).cast(target.type))
    return source


# --- months per commit ------------------------------------------------------------------------------------------

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
