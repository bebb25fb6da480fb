"""The fast way from a part file to typed rows: Arrow's JSON reader with the spec's schema, no Python per record.

It takes a file only when every value fits the spec's types as they are and no field is unknown (the parsed
schema is exactly the spec's); otherwise :func:`part_table` hands the file to the record-by-record path of
:mod:`.rows`, which widens the table for unknown fields and names the record whose value does not fit. Both
give the same rows for the same records (``tests/tables/test_part_reader.py``). :func:`run_table` reads many small files
of one run folder (one per company) in one call.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from airflow_provider_codat.landing.parts import decode_records
from airflow_provider_codat.tables import key as k
from airflow_provider_codat.tables.rows import LINEAGE_SCHEMA, record_row, table_schema, to_arrow
from airflow_provider_codat.tables.schema import DECIMAL, TIMESTAMP, arrow_type, record_fields

# Arrow's reader wraps a decimal too large for its type into a wrong value without an error (1.5e25 read as
# decimal(38, 18) comes out as 12983758111592070983.93). Read as decimal(76, 18), every value up to 58 integer
# digits is exact and larger ones are refused; a file whose values do not all fit the column's 20 integer
# digits then goes the record-by-record way, which names the record.
_READ_DECIMAL = pa.decimal256(76, 18)
_DECIMAL_LIMIT = Decimal(10) ** (DECIMAL.precision - DECIMAL.scale)
_NANOS = pa.timestamp("ns", tz="UTC")
_LINEAGE = pa.struct(
    [(name, pa.string()) for name in ("companyId", "dataType", "connectionId", "bankAccountId")]
    + [("extractedAt", _NANOS)]
)


@functools.cache
def _read_schema(data_type: str) -> pa.Schema:
    fields = [
        pa.field(name, arrow_type(spec, timestamp=_NANOS, decimal=_READ_DECIMAL))
        for name, spec in record_fields(data_type)
    ]
    return pa.schema([*fields, pa.field("_codat", _LINEAGE)])


def part_table(data_type: str, data: bytes, run: str, *, snapshot: bool) -> pa.Table:
    """The typed rows (spec columns, extra fields, lineage) of one part file's JSON lines.

    :param data_type: the catalogue key.
    :param data: the file's uncompressed bytes.
    :param run: the run folder it landed in.
    :param snapshot: a snapshot type (one row per scope).
    """
    table = _read_fast(data_type, data)
    if table is not None and (snapshot or table.column("id").null_count == 0):
        return _with_lineage(data_type, table, run, snapshot)
    rows = [record_row(data_type, record, run, snapshot=snapshot) for record in decode_records(data)]
    return to_arrow(data_type, rows)


def run_table(data_type: str, files: Sequence[bytes], run: str, *, snapshot: bool) -> pa.Table:
    """The typed rows of several part files of one run folder: one read of them all when Arrow takes them as
    they are (one call, on every core), else file by file as :func:`part_table` does.

    :param data_type: the catalogue key.
    :param files: the files' uncompressed bytes.
    :param run: the run folder they landed in.
    :param snapshot: a snapshot type (one row per scope).
    """
    table = None
    if len(files) > 1:
        joined = b"".join(data if data.endswith(b"\n") else data + b"\n" for data in files if data)
        table = _read_fast(data_type, joined)
    if table is not None and (snapshot or table.column("id").null_count == 0):
        return _with_lineage(data_type, table, run, snapshot)
    parts = [part_table(data_type, data, run, snapshot=snapshot) for data in files]
    return pa.concat_tables(parts, promote_options="default")


def _read_fast(data_type: str, data: bytes) -> pa.Table | None:
    schema = _read_schema(data_type)
    if "id" not in schema.names or not data or data.isspace():
        return None
    options = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer")
    try:
        table = pj.read_json(io.BytesIO(data), parse_options=options)
    except (pa.ArrowException, ValueError):  # a value that does not fit: the slow path names its record
        return None
    return table if table.schema == schema and _decimals_fit(table) else None


def _decimals_fit(table: pa.Table) -> bool:
    """Every decimal in ``table``, nested ones included, fits the column's integer digits."""
    return all(_fits(column.combine_chunks()) for column in table.columns)


def _fits(array: pa.Array) -> bool:
    kind = array.type
    if pa.types.is_decimal(kind):
        low, high = (value.as_py() for value in pc.min_max(array).values())
        return low is None or (low > -_DECIMAL_LIMIT and high < _DECIMAL_LIMIT)
    if pa.types.is_struct(kind):
        return all(_fits(array.field(index)) for index in range(kind.num_fields))
    if pa.types.is_list(kind):
        return _fits(array.flatten())
    return True


def _with_lineage(data_type: str, table: pa.Table, run: str, snapshot: bool) -> pa.Table:
    lineage = table.column("_codat").combine_chunks()
    company, connection, account = (
        lineage.field(name) for name in ("companyId", "connectionId", "bankAccountId")
    )
    extracted = lineage.field("extractedAt")
    ident = pa.nulls(len(table), pa.string()) if snapshot else table.column("id")
    parts = [pc.fill_null(part, "") for part in (company, connection, account, ident)]
    keys = pc.binary_join_element_wise(*parts, "/").combine_chunks()
    rows = len(table)
    modified = (
        pc.fill_null(_formatted(table.column("modifiedDate"), "%Y-%m-%dT%H:%M:%SZ"), "")
        if "modifiedDate" in table.column_names
        else pa.repeat("", rows)
    )
    columns: dict[str, Any] = {
        k.COMPANY: company,
        k.CONNECTION: connection,
        k.BANK_ACCOUNT: account,
        k.EXTRACTED_AT: extracted.cast(TIMESTAMP, safe=False),
        k.RUN: pa.repeat(run, rows),
        k.DELETED: _deleted(table),
        k.MODIFIED: modified,
        k.KEY: keys,
        k.KEY_HASH: k.key_hashes(keys),
        k.MONTH: _formatted(extracted, "%Y-%m"),
    }
    records = table.drop_columns(["_codat"])
    for field in LINEAGE_SCHEMA:
        records = records.append_column(field, pa.array(columns[field.name], field.type))
    return records.cast(table_schema(data_type, []), safe=False)  # dates: nanoseconds cut to microseconds


def _formatted(instants: pa.Array | pa.ChunkedArray, form: str) -> pa.Array:
    """``strftime`` of each instant, formatting each distinct instant once (a run's rows share few
    extraction times; formatting is the slow part)."""
    encoded = pc.dictionary_encode(
        instants.combine_chunks() if isinstance(instants, pa.ChunkedArray) else instants
    )
    return pc.take(pc.strftime(encoded.dictionary, format=form), encoded.indices)


def _deleted(table: pa.Table) -> pa.Array:
    if "metadata" not in table.column_names or "isDeleted" not in {
        f.name for f in table.schema.field("metadata").type
    }:
        return pa.repeat(False, len(table))
    return pc.fill_null(pc.struct_field(table.column("metadata"), "isDeleted"), False).combine_chunks()


def newest_table(table: pa.Table) -> pa.Table:
    """One row per key: its newest version (``modifiedDate``, then extraction time)."""
    if len(table) < 2 or pc.count_distinct(table.column(k.KEY)).as_py() == len(table):
        return table  # one version of each key already: no sort (it moves every column)
    ordered = table.sort_by(
        [(k.KEY, "ascending"), (k.MODIFIED, "descending"), (k.EXTRACTED_AT, "descending")]
    )
    keys = ordered.column(k.KEY).combine_chunks()
    changes = pc.not_equal(keys.slice(1), keys.slice(0, len(keys) - 1))
    return ordered.filter(pa.concat_arrays([pa.array([True]), changes]))
