"""The record fields of each data type, from Codat's Lending OpenAPI spec, for the lineage schema facet.

The provider ships only the result, ``airflow_provider_codat/lineage_fields.json`` (field name and JSON type of
the top level of a record), never the spec. ``tests/test_lineage.py`` checks the file against the spec;
regenerate it after a spec update with::

    .venv/bin/python -m tests.lineage_fields
"""

from __future__ import annotations

import json
from pathlib import Path

from airflow_provider_codat.datatypes import CATALOGUE
from airflow_provider_codat.lineage import FIELDS_FILE
from tests.oas import load_spec, spec_path

LENDING = "Codat-Lending.json"


def _resolve(spec: dict, node: dict) -> dict:
    while isinstance(node, dict) and "$ref" in node:
        target = spec
        for part in node["$ref"].removeprefix("#/").split("/"):  # a JSON pointer
            part = part.replace("~1", "/").replace("~0", "~")
            target = target[int(part)] if isinstance(target, list) else target[part]
        node = target
    return node


def _properties(spec: dict, schema: dict) -> dict[str, dict]:
    """The properties of ``schema``, its ``allOf`` parts merged in order."""
    schema = _resolve(spec, schema)
    found: dict[str, dict] = {}
    for part in schema.get("allOf", []):
        found.update(_properties(spec, part))
    found.update(schema.get("properties", {}))
    return found


def _json_type(spec: dict, schema: dict) -> str:
    schema = _resolve(spec, schema)
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
    operation = spec["paths"].get(spec_path(CATALOGUE[data_type].path), {}).get("get")
    if operation is None:
        return None
    response = _resolve(spec, operation["responses"]["200"])
    schema = response["content"]["application/json"]["schema"]
    properties = _properties(spec, schema)
    results = properties.get("results")
    if results is not None and _json_type(spec, results) == "array":  # a page: the records are its results
        properties = _properties(spec, _resolve(spec, results)["items"])
    return [[name, _json_type(spec, value)] for name, value in properties.items()]


def all_record_fields() -> dict[str, list[list[str]]]:
    """Every catalogue type the spec describes (skips the calling test when the spec is absent)."""
    spec = load_spec(LENDING)
    found = {key: record_fields(spec, key) for key in sorted(CATALOGUE)}
    return {key: fields for key, fields in found.items() if fields}


def main() -> None:
    lines = [f"{json.dumps(key)}: {json.dumps(fields)}" for key, fields in all_record_fields().items()]
    Path(FIELDS_FILE).write_text("{\n" + ",\n".join(lines) + "\n}\n")  # one data type a line
    print(f"wrote {FIELDS_FILE}")


if __name__ == "__main__":
    main()
