"""Column types from Codat's OpenAPI spec, shipped as ``schemas.json`` (``tests/table_schemas.py`` makes it).

Decimals are ``decimal(38, 18)``: every value with at most 20 integer and 18 fractional digits is kept exactly
(Delta holds at most 38 digits); a value that does not fit fails the merge, naming its record. Dates are UTC
timestamps (microseconds: Delta's precision; Codat's seventh fractional digit is kept in the ordering column,
see :mod:`.key`). Nested objects are structs, arrays lists; free-form objects and unions are JSON text.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pyarrow as pa

SCHEMAS_FILE = Path(__file__).with_name("schemas.json")
DECIMAL = pa.decimal128(38, 18)
TIMESTAMP = pa.timestamp("us", tz="UTC")
_SCALARS = {
    "string": pa.string(),
    "decimal": DECIMAL,
    "integer": pa.int64(),
    "boolean": pa.bool_(),
    "timestamp": TIMESTAMP,
    "json": pa.string(),
}


@functools.cache
def record_schemas() -> dict[str, list[list[Any]]]:
    """``{data_type: [[field, type], ...]}`` as shipped."""
    return json.loads(SCHEMAS_FILE.read_text())


def arrow_type(
    spec: Any, *, timestamp: pa.DataType = TIMESTAMP, decimal: pa.DataType = DECIMAL
) -> pa.DataType:
    """The Arrow type of one field type of ``schemas.json``.

    :param spec: the field type.
    :param timestamp: the type of dates (nanoseconds to read Codat's seven digits, then cut to the column's).
    :param decimal: the type of decimals (wider to read them, then checked and narrowed to the column's).
    """
    if isinstance(spec, str):
        return {"timestamp": timestamp, "decimal": decimal}.get(spec) or _SCALARS[spec]
    if "list" in spec:
        return pa.list_(arrow_type(spec["list"], timestamp=timestamp, decimal=decimal))
    return pa.struct(
        [
            pa.field(name, arrow_type(sub, timestamp=timestamp, decimal=decimal))
            for name, sub in spec["struct"]
        ]
    )


def record_fields(data_type: str) -> list[tuple[str, Any]]:
    """The spec's fields of a record of ``data_type`` (empty for a type the spec lacks)."""
    return [(name, spec) for name, spec in record_schemas().get(data_type, [])]
