"""The typed table schema of each data type, from Codat's Lending OpenAPI spec.

The provider ships only the result, ``airflow_provider_codat/tables/schemas.json``, never the spec (it is read
at run time by :mod:`airflow_provider_codat.tables.schema`). ``tests/tables/test_schema.py`` checks the file
against the spec; regenerate it after a spec update with::

    .venv/bin/python -m tests.table_schemas

A field's type is ``"string"``, ``"decimal"`` (``number``), ``"integer"``, ``"boolean"``, ``"timestamp"`` (the
spec's ``DateTime``, ``date-time`` or ``date``), ``"json"`` (free-form objects, unions, and what nests too
deep: kept as JSON text), ``{"struct": [[name, type], ...]}`` or ``{"list": type}``.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_codat.datatypes import CATALOGUE
from airflow_provider_codat.tables.schema import SCHEMAS_FILE
from tests.oas import LENDING, load_spec, record_properties, write_per_type
from tests.oas import properties as _properties
from tests.oas import resolve as _resolve

_MAX_DEPTH = 5  # deeper (or self-referencing) objects are kept as JSON text
_DATE_REF = "#/components/schemas/DateTime"
_SHAPE = {"type", "properties", "items", "enum", "allOf", "anyOf", "oneOf", "format"}


def _is_date(node: dict) -> bool:
    if node.get("$ref") == _DATE_REF:
        return True
    for choice in ("allOf", "anyOf", "oneOf"):
        if any(_is_date(option) for option in node.get(choice, [])):
            return True
    return node.get("format") in ("date-time", "date")


def _options(spec: dict, node: dict) -> list[dict]:
    """The non-null alternatives of a union (``anyOf``/``oneOf``), resolved."""
    options = [_resolve(spec, n) for n in node.get("anyOf", []) + node.get("oneOf", [])]
    return [o for o in options if o.get("type") != "null"]


def field_type(spec: dict, node: dict, depth: int = 0, seen: tuple = ()) -> Any:
    """The table type of one schema node (see the module docstring)."""
    if _is_date(node):
        return "timestamp"
    ref = node.get("$ref")
    if ref in seen or depth > _MAX_DEPTH:
        return "json"
    node_seen = (*seen, ref) if ref else seen
    node = _resolve(spec, node)
    if _is_date(node):
        return "timestamp"
    options = _options(spec, node)
    if options:
        return field_type(spec, options[0], depth, node_seen) if len(options) == 1 else "json"
    kind = node.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind is None and node.get("allOf"):
        if _properties(spec, node):
            kind = "object"
        else:  # a type plus parts that only describe it
            typed = [part for part in node["allOf"] if _SHAPE & set(_resolve(spec, part))]
            if len(typed) == 1:
                return field_type(spec, typed[0], depth, node_seen)
    if kind == "array":
        return {"list": field_type(spec, node.get("items", {}), depth + 1, node_seen)}
    if kind == "object":
        properties = _properties(spec, node)
        if not properties:
            return "json"
        return {"struct": [[k, field_type(spec, v, depth + 1, node_seen)] for k, v in properties.items()]}
    if kind in ("number", "integer", "boolean"):
        return {"number": "decimal"}.get(kind, kind)
    return "string" if kind == "string" or "enum" in node else "json"


def record_schema(spec: dict, data_type: str) -> list[list[Any]] | None:
    """``[[field, type], ...]`` of one record of ``data_type``; ``None`` when the spec has no read for it."""
    found = record_properties(
        spec, CATALOGUE[data_type].path, lambda results: _resolve(spec, results).get("type") == "array"
    )
    if found is None:
        return None
    return [[name, field_type(spec, value, 1)] for name, value in found.items()]


def all_schemas() -> dict[str, list[list[Any]]]:
    """Every catalogue type the spec describes (skips the calling test when the spec is absent)."""
    spec = load_spec(LENDING)
    found = {key: record_schema(spec, key) for key in sorted(CATALOGUE)}
    return {key: fields for key, fields in found.items() if fields}


def main() -> None:
    write_per_type(SCHEMAS_FILE, all_schemas())


if __name__ == "__main__":
    main()
