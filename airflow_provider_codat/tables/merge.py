"""Merge committed extract runs into a data type's current-state Delta table: one commit for many companies.

:func:`merge_runs` reads the runs' manifests and part files, keeps each record's newest version, types every
value (a misfit fails here, before any write), then commits a Delta ``MERGE``:

- the predicate names the months (``_codat_month``, the partition) holding the batch's existing rows, found
  from the cheap ``_codat_key_hash`` column, plus the month new rows go to: only those files are read and
  rewritten (a predicate naming no partition rewrites the whole table); a batch touching many months is
  committed a few months at a time, which bounds delta-rs's memory (:mod:`.commits`);
- a row is replaced or deleted only by a *newer* version (``modifiedDate``, then extraction time), so merging
  a run twice, or an older run late, changes nothing it should not; deletions are remembered
  (:mod:`.tombstones`) so that a late run cannot bring a deleted record back;
- fields Codat added, at the top or inside structs, widen the table first (:mod:`.commits`);
- the runs of companies deleted at Codat are left out (:mod:`.deleted_companies`);
- the commit records the runs it holds (:mod:`.commits`); a run already held is not read again;
- the part files are read by Arrow's JSON reader with the spec's schema (:mod:`.part_reader`), record by record
  only when a file holds something Arrow does not take as it is (:mod:`.rows`);
- a commit that loses a race with another writer is retried from the start, up to ``max_attempts`` times.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable
from deltalake.exceptions import CommitFailedError

from airflow_provider_codat.datatypes import Kind, get_data_type
from airflow_provider_codat.landing.destination import destination_path
from airflow_provider_codat.landing.parts import read_part_file
from airflow_provider_codat.tables import key as k
from airflow_provider_codat.tables import tombstones
from airflow_provider_codat.tables.commits import (
    held_runs,
    matching,
    month_groups,
    rows_of,
    runs_metadata,
    widened,
    writer_properties,
)
from airflow_provider_codat.tables.deleted_companies import forget_late_rows, forgotten_companies
from airflow_provider_codat.tables.key import looked_up
from airflow_provider_codat.tables.location import TOMBSTONES_FOLDER, delta_location, tables_root
from airflow_provider_codat.tables.memory import arrow_on_malloc, release_freed_memory
from airflow_provider_codat.tables.part_reader import newest_table, run_table
from airflow_provider_codat.tables.source import LandedRun, landed_runs

log = logging.getLogger(__name__)

DEFAULT_MAX_ATTEMPTS = 5
READ_BATCH_BYTES = 16 * 1024 * 1024  # part files read together: few calls, memory bounded
PART_KEY = "codat_merge_part"  # in each commit's metadata: "2/3", the second of a merge's three commits
_NEWER = (
    f"(s.{k.MODIFIED} > t.{k.MODIFIED}) OR "
    f"(s.{k.MODIFIED} = t.{k.MODIFIED} AND s.{k.EXTRACTED_AT} > t.{k.EXTRACTED_AT})"
)


@dataclass
class MergeResult:
    """What one merge did (plain values: it goes to XCom and asset events).

    :param data_type: the catalogue key.
    :param table: the table's URI.
    :param version: the table's version after the merge (``None``: no table yet).
    :param merged: ``company/run folder`` of each run merged by this call.
    :param already_held: runs found merged before (a retry, another DAG), not read again.
    :param forgotten: runs left out because their company was deleted at Codat (:mod:`.deleted_companies`).
    """

    data_type: str
    table: str
    version: int | None = None
    merged: list[str] = field(default_factory=list)
    already_held: list[str] = field(default_factory=list)
    forgotten: list[str] = field(default_factory=list)
    source_rows: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def merge_runs(
    *,
    data_type: str,
    destination: Any,
    company_ids: Sequence[str],
    run_id: str,
    tables: Any = None,
    keep_deleted: bool = False,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> MergeResult:
    """Merge run ``run_id`` of ``data_type`` for ``company_ids`` (those that committed) into its table.

    :param data_type: the catalogue key.
    :param destination: the landing's destination (URI or ``ObjectStoragePath``).
    :param company_ids: the companies whose run to merge.
    :param run_id: the Airflow run id that landed them.
    :param tables: the folder of the tables; ``None``: ``{destination}/_tables``.
    :param keep_deleted: keep deleted records as rows with ``_codat_deleted`` true instead of removing them.
    :param max_attempts: commits tried when other writers commit first.
    """
    entry = get_data_type(data_type)
    landing = destination_path(destination)
    root = tables_root(landing, tables)
    uri, options = delta_location(root / entry.key)
    graves = delta_location(root / TOMBSTONES_FOLDER / entry.key)
    runs = landed_runs(landing, entry.key, [str(c) for c in company_ids], run_id)
    with arrow_on_malloc():  # see .memory
        for attempt in range(1, max_attempts + 1):
            forgotten = forgotten_companies(root)  # companies deleted at Codat: their runs stay out
            live = [run for run in runs if run.company_id not in forgotten]
            try:
                result = _merge_once(
                    entry.key, entry.kind is Kind.SNAPSHOT, (uri, options), graves, live, keep_deleted
                )
            except CommitFailedError as exc:
                if attempt == max_attempts:
                    raise
                log.warning(
                    "Another writer committed to %s first (%s); merging again (attempt %d)", uri, exc, attempt
                )
                continue
            result.forgotten = [_run_name(run) for run in runs if run not in live]
            if result.merged:  # a company recorded as deleted while this merge ran: its rows go again
                merged = {run.company_id for run in live if _run_name(run) in result.merged}
                forget_late_rows(root, root / entry.key, merged, keep_deleted)
            return result
    raise AssertionError("unreachable")


def _run_name(run: LandedRun) -> str:
    return f"{run.company_id}/{run.run_folder}"


def _merge_once(
    data_type: str,
    snapshot: bool,
    location: tuple[str, dict[str, str]],
    graves: tuple[str, dict[str, str]],
    runs: list[LandedRun],
    keep_deleted: bool,
) -> MergeResult:
    uri, options = location
    table = DeltaTable(uri, storage_options=options) if DeltaTable.is_deltatable(uri, options) else None
    held = held_runs(table) if table is not None else {}
    todo = [run for run in runs if (run.company_id, run.run_folder) not in held]
    result = MergeResult(data_type, uri, table.version() if table is not None else None)
    result.already_held = [_run_name(run) for run in runs if run not in todo]
    # Every value is typed and checked here, before anything is written.
    source = _newest_versions(list(_typed_parts(data_type, todo, snapshot)))
    if source is None or len(source) == 0:
        log.info("%s: nothing new to merge (%d runs held already)", data_type, len(result.already_held))
        return result
    if not keep_deleted:  # earlier deletions first: this batch's own cannot bury its rows (one per key)
        source = tombstones.drop_buried(*graves, source)
        tombstones.record_deletions(*graves, source)
    table = table or DeltaTable.create(
        uri, source.schema, mode="ignore", partition_by=[k.MONTH], storage_options=options
    )
    table = widened(table, source.schema)  # fields Codat added, before the rows that hold them
    source, months, spanning = _place(table, source)
    release_freed_memory()  # what reading left behind, before delta-rs's query allocates its own
    groups = [months] if spanning else month_groups(table, months)
    metrics = _execute_groups(table, source, groups, keep_deleted, runs_metadata(_runs_by_folder(todo)))
    result.version = DeltaTable(uri, storage_options=options).version()
    result.merged = [_run_name(run) for run in todo]
    result.source_rows = source.num_rows
    result.inserted = int(metrics.get("num_target_rows_inserted", 0))
    result.updated = int(metrics.get("num_target_rows_updated", 0))
    result.deleted = int(metrics.get("num_target_rows_deleted", 0))
    log.info("%s: merged %d runs into version %s: %s", data_type, len(todo), result.version, metrics)
    return result


def _newest_versions(parts: list[pa.Table]) -> pa.Table | None:
    """One row per key of the runs' rows, as one contiguous table."""
    if not parts:
        return None
    return newest_table(pa.concat_tables(parts, promote_options="default")).combine_chunks()


def _typed_parts(data_type: str, runs: list[LandedRun], snapshot: bool) -> Iterator[pa.Table]:
    """The runs' part files as typed rows, read :data:`READ_BATCH_BYTES` at a time per run folder (one Arrow read
    for many companies' small files)."""
    files_by_folder: dict[str, list[str]] = {}
    for run in runs:
        files_by_folder.setdefault(run.run_folder, []).extend(run.files)
    for folder, uris in files_by_folder.items():
        batch: list[bytes] = []
        size = 0
        for uri in uris:
            batch.append(read_part_file(uri))
            size += len(batch[-1])
            if size >= READ_BATCH_BYTES:
                yield run_table(data_type, batch, folder, snapshot=snapshot)
                batch, size = [], 0
        if batch:
            yield run_table(data_type, batch, folder, snapshot=snapshot)


def _runs_by_folder(runs: list[LandedRun]) -> dict[str, list[str]]:
    by_folder: dict[str, list[str]] = {}
    for run in runs:
        by_folder.setdefault(run.run_folder, []).append(run.company_id)
    return by_folder


def _place(table: DeltaTable, source: pa.Table) -> tuple[pa.Table, list[str], bool]:
    """The source with each existing record's month (so its row stays where it is), the months the merge
    touches (those of the existing rows and of the new ones), and whether a key digest was found in more than
    one month (a collision of digests: then every such month must be in the same ``MERGE``)."""
    hashes = source.column(k.KEY_HASH)
    found = table.to_pyarrow_dataset().to_table(
        columns=[k.KEY_HASH, k.MONTH], filter=pc.field(k.KEY_HASH).isin(hashes)
    )
    months = set(pc.unique(found.column(k.MONTH)).to_pylist())  # every month a hash is in (collisions too)
    homes = found.group_by(k.KEY_HASH).aggregate([(k.MONTH, "max"), (k.MONTH, "count_distinct")])
    spanning = len(homes) > 0 and pc.max(homes[f"{k.MONTH}_count_distinct"]).as_py() > 1
    homes = pa.table({k.KEY_HASH: homes[k.KEY_HASH], "_home": homes[f"{k.MONTH}_max"]})
    met = looked_up(pa.table({k.KEY_HASH: hashes}), homes, k.KEY_HASH)
    placed = pc.coalesce(met["_home"], source.column(k.MONTH))
    months.update(pc.unique(placed).to_pylist())
    index = source.schema.get_field_index(k.MONTH)
    return source.set_column(index, k.MONTH, placed.cast(pa.string())), sorted(months), spanning


def _execute_groups(
    table: DeltaTable, source: pa.Table, groups: list[list[str]], keep_deleted: bool, metadata: dict[str, str]
) -> dict[str, int]:
    """One ``MERGE`` per group of months (:mod:`.commits`); the last one records the runs. The metrics summed."""
    totals: Counter[str] = Counter()
    for number, months in enumerate(groups, start=1):
        last = number == len(groups)
        part = {PART_KEY: f"{number}/{len(groups)}"} | (metadata if last else {})
        rows = source if len(groups) == 1 else rows_of(source, months)
        metrics = _execute(table, rows, months, keep_deleted, part)
        totals.update({name: value for name, value in metrics.items() if isinstance(value, int)})
        if not last:
            table.update_incremental()
            release_freed_memory()
    return dict(totals)


def _execute(
    table: DeltaTable, source: pa.Table, months: list[str], keep_deleted: bool, metadata: dict[str, str]
) -> dict[str, Any]:
    source = matching(source, table)
    named = ", ".join("'" + month.replace("'", "''") + "'" for month in months)
    merger = table.merge(
        source,
        predicate=f"t.{k.KEY} = s.{k.KEY} AND t.{k.MONTH} IN ({named})",
        source_alias="s",
        target_alias="t",
        writer_properties=writer_properties(),
        commit_properties=CommitProperties(custom_metadata=metadata),
    )
    updates = {_quoted(name): f"s.{_quoted(name)}" for name in source.column_names if name != k.MONTH}
    if keep_deleted:
        merger = merger.when_matched_update(updates=updates, predicate=_NEWER).when_not_matched_insert_all()
    else:
        merger = (
            merger.when_matched_delete(predicate=f"s.{k.DELETED} AND ({_NEWER})")
            .when_matched_update(updates=updates, predicate=f"NOT s.{k.DELETED} AND ({_NEWER})")
            .when_not_matched_insert_all(predicate=f"NOT s.{k.DELETED}")
        )
    return merger.execute()


def _quoted(name: str) -> str:
    return name if name.isidentifier() and name.isascii() else '"' + name.replace('"', '""') + '"'
