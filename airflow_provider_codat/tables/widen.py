"""A table's schema widened before a merge, for the fields Codat added since (at the top or inside structs).

delta-rs's MERGE can widen a schema itself (``merge_schema``), but a struct it widens that way comes out null
in every row the merge copies unchanged (deltalake 1.6), losing data. So the table is widened first, by a commit
of no rows, and each batch is then made to match the table's schema before the merge.
"""

from __future__ import annotations

import logging

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from airflow_provider_codat.errors import CodatTableError

log = logging.getLogger(__name__)


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
