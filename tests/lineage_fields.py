"""The record fields of each data type, from Codat's Lending OpenAPI spec, for the lineage schema facet.

The provider ships only the result, ``airflow_provider_codat/extract/lineage_fields.json`` (field name and JSON type of
the top level of a record), never the spec. ``tests/test_lineage.py`` checks the file against the spec;
regenerate it after a spec update with::

    .venv/bin/python -m tests.lineage_fields
"""

from __future__ import annotations

from airflow_provider_codat.datatypes import CATALOGUE
from airflow_provider_codat.extract.lineage import FIELDS_FILE
from tests.oas import LENDING, load_spec, record_properties, resolve, write_per_type


def _json_type(spec: dict, schema: dict) -> str:
    schema = resolve(spec, schema)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind:
        return kind
    for choice in ("allOf", "anyOf", "oneOf"):
        for option in schema.get(choice, []):
            option_type = _json_type(spec, option)
            if option_type != "null":
                return option_type
    if "enum" in schema:
        return "string"
    return "object"


def record_fields(spec: dict, data_type: str) -> list[list[str]] | None:
    """``[[field, json type], ...]`` of one record of ``data_type``; ``None`` when the spec has no read for it."""
    found = record_properties(
        spec, CATALOGUE[data_type].path, lambda results: _json_type(spec, results) == "array"
    )
    if found is None:
        return None
    return [[name, _json_type(spec, value)] for name, value in found.items()]


def all_record_fields() -> dict[str, list[list[str]]]:
    """Every catalogue type the spec describes (skips the calling test when the spec is absent)."""
    spec = load_spec(LENDING)
    found = {key: record_fields(spec, key) for key in sorted(CATALOGUE)}
    return {key: fields for key, fields in found.items() if fields}


def main() -> None:
    write_per_type(FIELDS_FILE, all_record_fields())


if __name__ == "__main__":
    main()
