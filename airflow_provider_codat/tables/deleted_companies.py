"""Companies deleted at Codat leave the tables, and stay out of them.

Codat deletes all of a deleted company's data (``company.deleted``), and company ids are UUIDs, never reused.
:func:`forget_companies` first records each company in ``{tables}/_deleted/_companies`` (a small Delta table:
the company, when Codat deleted it, when it was forgotten here), then removes the company's rows from every
data type's table and from its tombstones, one commit per table (with ``keep_deleted``: flags them
``_codat_deleted`` instead, like deleted records). The merge (:mod:`.merge`) leaves out the runs of every
recorded company, so a run merged later (a failed merge cleared days after, a run landed just before the
deletion) cannot bring the company's rows back; a merge that commits while a company is being forgotten looks
at the record again after its commit and removes what it added (:func:`forget_late_rows`).

Record first, then remove: a kill between the two leaves rows that no merge adds to and that the retry
removes. Each step changes only what is left to change: a company recorded again keeps its first record, and a
table holding no (unflagged) row of the companies gets no commit; so a retry, or a second event for the same
company, changes nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from airflow.sdk import ObjectStoragePath
from deltalake import CommitProperties, DeltaTable, QueryBuilder
from deltalake.exceptions import CommitFailedError

from airflow_provider_codat.landing.destination import destination_path
from airflow_provider_codat.tables import key as k
from airflow_provider_codat.tables.location import COMPANIES_FOLDER, TOMBSTONES_FOLDER, delta_location
from airflow_provider_codat.tables.schema import TIMESTAMP
from airflow_provider_codat.timestamps import parse_timestamp
from airflow_provider_codat.values import CompanyId

log = logging.getLogger(__name__)

FORGOTTEN_KEY = "codat_forgotten_companies"  # in the commit info of each removal
DEFAULT_MAX_ATTEMPTS = 5
REGISTRY_SCHEMA = pa.schema(
    [
        pa.field("company_id", pa.string(), nullable=False),
        pa.field("deleted_at", TIMESTAMP),  # Codat's generatedDate of the company.deleted event
        pa.field("forgotten_at", TIMESTAMP, nullable=False),
    ]
)


@dataclass
class ForgetResult:
    """What :func:`forget_companies` did (plain values: it goes to XCom and asset events).

    :param companies: the companies forgotten (checked ids).
    :param recorded: those recorded by this call (the others were recorded before: a retry, a second event).
    :param tables: ``{data_type: {table, version, removed or flagged}}`` for every data type's table.
    """

    companies: list[str]
    recorded: list[str] = field(default_factory=list)
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def registry_folder(root: ObjectStoragePath) -> ObjectStoragePath:
    """``{tables}/_deleted/_companies``: the companies deleted at Codat (no data type key starts with ``_``)."""
    return root / TOMBSTONES_FOLDER / COMPANIES_FOLDER


def forgotten_companies(root: ObjectStoragePath) -> set[str]:
    """The ids of every company recorded as deleted under the tables' folder ``root``."""
    uri, options = delta_location(registry_folder(root))
    if not DeltaTable.is_deltatable(uri, storage_options=options):
        return set()
    found = DeltaTable(uri, storage_options=options).to_pyarrow_table(columns=["company_id"])
    return set(found.column("company_id").to_pylist())


def forget_companies(
    *,
    root: Any,
    company_ids: Sequence[str],
    deleted_at: Mapping[str, Any] | None = None,
    keep_deleted: bool = False,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> ForgetResult:
    """Record ``company_ids`` as deleted, then remove (or flag) their rows in every table under ``root``.

    :param root: the tables' folder (URI or ``ObjectStoragePath``): ``{destination}/_tables`` by default.
    :param company_ids: the companies Codat deleted.
    :param deleted_at: when Codat deleted each (``{company id: timestamp}``, e.g. the event's ``deleted_at``).
    :param keep_deleted: keep the rows, flagged ``_codat_deleted``, as the tables keep deleted records.
    :param max_attempts: commits tried per table when other writers commit first.
    :raises CodatValidationError: an id that is not a company id; nothing is written then.
    """
    companies = list(dict.fromkeys(str(CompanyId.parse(c, "company_ids")) for c in company_ids))
    moments = {str(CompanyId.parse(c, "deleted_at")): v for c, v in (deleted_at or {}).items()}
    folder = destination_path(root)
    result = ForgetResult(companies=companies)
    if not companies:
        return result
    result.recorded = _record(folder, companies, moments)
    for table in data_type_tables(folder):
        result.tables[table.name] = _forget_in(table, companies, keep_deleted, max_attempts)
    if not keep_deleted:  # the record replaces the companies' tombstones
        for graves in tombstone_tables(folder):
            _forget_in(graves, companies, False, max_attempts)
    return result


def data_type_tables(root: ObjectStoragePath) -> list[ObjectStoragePath]:
    """The data types' tables under ``root`` (not the tombstones nor the record of deleted companies)."""
    return _delta_children(root)


def tombstone_tables(root: ObjectStoragePath) -> list[ObjectStoragePath]:
    """The tombstones of each data type (``{root}/_deleted/{dataType}``)."""
    return _delta_children(root / TOMBSTONES_FOLDER)


def _delta_children(folder: ObjectStoragePath) -> list[ObjectStoragePath]:
    """The Delta tables in ``folder`` whose name is a data type key (none starts with ``_``)."""
    if not folder.exists():
        return []
    return [
        child
        for child in sorted(folder.iterdir(), key=lambda path: path.name)
        if not child.name.startswith("_") and (child / "_delta_log").exists()
    ]


def _record(root: ObjectStoragePath, companies: list[str], moments: Mapping[str, Any]) -> list[str]:
    """Insert the companies not recorded yet; those this call recorded."""
    known = forgotten_companies(root)
    new = [company for company in companies if company not in known]
    if not new:
        return []
    now = datetime.now(tz=UTC)
    rows = pa.Table.from_pylist(
        [{"company_id": c, "deleted_at": parse_timestamp(moments.get(c)), "forgotten_at": now} for c in new],
        schema=REGISTRY_SCHEMA,
    )
    uri, options = delta_location(registry_folder(root))
    table = DeltaTable.create(uri, REGISTRY_SCHEMA, mode="ignore", storage_options=options)
    # A merge, not an append: of two forgetters racing, the second inserts nothing (the first record stays).
    merger = table.merge(rows, predicate="t.company_id = s.company_id", source_alias="s", target_alias="t")
    merger.when_not_matched_insert_all().execute()
    log.info("Recorded %d companies as deleted at Codat in %s", len(new), uri)
    return new


def _forget_in(
    folder: ObjectStoragePath, companies: Collection[str], keep_deleted: bool, max_attempts: int
) -> dict[str, Any]:
    """Remove (or flag) the companies' rows in one table, one commit, retried when another writer wins."""
    uri, options = delta_location(folder)
    for attempt in range(1, max_attempts + 1):
        try:
            return _forget_once(uri, options, companies, keep_deleted)
        except CommitFailedError as exc:
            if attempt == max_attempts:
                raise
            log.warning(
                "Another writer committed to %s first (%s); trying again (attempt %d)", uri, exc, attempt
            )
    raise AssertionError("unreachable")


def _forget_once(
    uri: str, options: dict[str, str], companies: Collection[str], keep_deleted: bool
) -> dict[str, Any]:
    table = DeltaTable(uri, storage_options=options)
    named = ", ".join(f"'{company}'" for company in sorted(companies))  # checked UUIDs: nothing to escape
    predicate = f"{k.COMPANY} IN ({named})"
    done = "flagged" if keep_deleted else "removed"
    if _count(table, f"{predicate} AND NOT {k.DELETED}" if keep_deleted else predicate) == 0:
        # Nothing left to do: no commit, so a retry or a second event changes nothing.
        return {"table": uri, "version": table.version(), done: 0}
    commit = CommitProperties(custom_metadata={FORGOTTEN_KEY: json.dumps(sorted(companies))})
    if keep_deleted:
        metrics = table.update(
            updates={k.DELETED: "true"},
            predicate=f"{predicate} AND NOT {k.DELETED}",
            commit_properties=commit,
        )
        changed = int(metrics.get("num_updated_rows", 0))
    else:
        metrics = table.delete(predicate, commit_properties=commit)
        changed = int(metrics.get("num_deleted_rows", 0))
    log.info("%s: %s %d rows of %d companies deleted at Codat", uri, done, changed, len(companies))
    return {"table": uri, "version": DeltaTable(uri, storage_options=options).version(), done: changed}


def _count(table: DeltaTable, predicate: str) -> int:
    """Rows matching ``predicate``, counted by delta-rs's query engine (it skips files by their statistics)."""
    found = QueryBuilder().register("t", table).execute(f"SELECT count(*) AS n FROM t WHERE {predicate}")
    return int(pa.table(found.read_all()).column("n")[0].as_py())


def forget_late_rows(
    root: ObjectStoragePath, folder: ObjectStoragePath, merged: Collection[str], keep_deleted: bool
) -> list[str]:
    """After a merge's commit: remove (or flag) the rows of merged companies recorded as deleted meanwhile.

    A company recorded while a merge was under way may have had its rows removed before the merge committed
    them; the record is committed before the removal, so looking at it after the commit finds the company.

    :param root: the tables' folder.
    :param folder: the merged table.
    :param merged: the companies the merge committed rows of.
    :param keep_deleted: the merge's mode (flag instead of remove).
    :return: the companies whose rows were removed or flagged.
    """
    late = sorted(forgotten_companies(root) & set(merged))
    if late:
        _forget_in(folder, late, keep_deleted, DEFAULT_MAX_ATTEMPTS)
    return late
