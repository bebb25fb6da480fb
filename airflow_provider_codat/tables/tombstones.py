"""Deletions remembered beside a table, so that a run merged late cannot bring a deleted record back.

A deleted record leaves its table; without a trace, an older run merged afterwards (a failed merge cleared
days later) would insert its older, live version again. So each deletion's key and version go to a small Delta
table ``{tables}/_deleted/{data_type}`` before the table's own merge, and a live version that is not newer
than its deletion is dropped from every later merge. Writing a tombstone twice changes nothing (the newest
deletion is kept), so a kill between the two commits is harmless.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from airflow_provider_codat.tables import key as k
from airflow_provider_codat.tables.key import looked_up

COLUMNS = (k.KEY, k.KEY_HASH, k.MODIFIED, k.EXTRACTED_AT, k.COMPANY)
_NEWER = (
    f"(s.{k.MODIFIED} > t.{k.MODIFIED}) OR "
    f"(s.{k.MODIFIED} = t.{k.MODIFIED} AND s.{k.EXTRACTED_AT} > t.{k.EXTRACTED_AT})"
)


def record_deletions(uri: str, options: dict[str, str], source: pa.Table) -> None:
    """Remember the deleted rows of ``source`` (those with ``_codat_deleted``) in the tombstones at ``uri``."""
    deleted = source.filter(pc.field(k.DELETED)).select(list(COLUMNS))
    if deleted.num_rows == 0:
        return
    table = DeltaTable.create(uri, deleted.schema, mode="ignore", storage_options=options)
    (
        table.merge(deleted, predicate=f"t.{k.KEY} = s.{k.KEY}", source_alias="s", target_alias="t")
        .when_matched_update_all(predicate=_NEWER)
        .when_not_matched_insert_all()
        .execute()
    )


def drop_buried(uri: str, options: dict[str, str], source: pa.Table) -> pa.Table:
    """``source`` without the live rows that a remembered deletion is at least as new as."""
    if not DeltaTable.is_deltatable(uri, storage_options=options):
        return source
    hashes = source.column(k.KEY_HASH)
    dataset = DeltaTable(uri, storage_options=options).to_pyarrow_dataset()
    found = dataset.to_table(
        columns=[k.KEY, k.MODIFIED, k.EXTRACTED_AT], filter=pc.field(k.KEY_HASH).isin(hashes)
    )
    if found.num_rows == 0:
        return source
    graves = found.rename_columns([k.KEY, "_buried_modified", "_buried_extracted"])
    versions = source.select([k.KEY, k.MODIFIED, k.EXTRACTED_AT, k.DELETED])
    met = looked_up(versions, graves, k.KEY)  # one grave per key at most
    newer = pc.or_(
        pc.greater(met[k.MODIFIED], met["_buried_modified"]),
        pc.and_(
            pc.equal(met[k.MODIFIED], met["_buried_modified"]),
            pc.greater(met[k.EXTRACTED_AT], met["_buried_extracted"]),
        ),
    )
    keep = pc.or_kleene(met[k.DELETED], pc.or_kleene(pc.is_null(met["_buried_modified"]), newer))
    return source.filter(pc.fill_null(keep, False))
