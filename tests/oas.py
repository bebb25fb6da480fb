"""Codat's OpenAPI specs from ../shared/codat-oas, for tests that check facts against them.

The specs are Codat's public OpenAPI documents (``Codat-Platform.json``, ``Codat-Lending.json``), kept as
data in the ``shared/codat-oas`` folder that sits beside the project root (``../shared/codat-oas`` from the
repository). A clone without that folder skips the tests that need them, each saying so.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

OAS_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "codat-oas"


@functools.cache
def load_spec(name: str) -> dict:
    """Load ``Codat-Platform.json`` or ``Codat-Lending.json``; skip the calling test when the folder is absent."""
    path = OAS_DIR / name
    if not path.is_file():
        pytest.skip(missing_spec_reason(name))
    return json.loads(path.read_text())


def missing_spec_reason(name: str) -> str:
    """Why a test that needs Codat's spec ``name`` is skipped: where the spec is expected and what it is."""
    return (
        f"needs Codat's OpenAPI spec {name} (Codat's public OpenAPI specifications, Platform and Lending "
        f"APIs), expected in ../shared/codat-oas beside the project root ({OAS_DIR}), which is absent here; "
        "see tests/oas.py"
    )


def spec_path(template: str) -> str:
    """A catalogue read path in the spec's spelling (``{company_id}`` -> ``{companyId}``)."""
    return (
        template.replace("{company_id}", "{companyId}")
        .replace("{connection_id}", "{connectionId}")
        .replace("{account_id}", "{accountId}")
    )


LENDING = "Codat-Lending.json"


def resolve(spec: dict, node: dict) -> dict:
    """``node`` with its ``$ref`` (JSON pointers into ``spec``) followed until none is left."""
    while isinstance(node, dict) and "$ref" in node:
        target = spec
        for part in node["$ref"].removeprefix("#/").split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            target = target[int(part)] if isinstance(target, list) else target[part]
        node = target
    return node


def properties(spec: dict, schema: dict) -> dict[str, dict]:
    """The properties of ``schema``, its ``allOf`` parts merged in order."""
    schema = resolve(spec, schema)
    found: dict[str, dict] = {}
    for part in schema.get("allOf", []):
        found.update(properties(spec, part))
    found.update(schema.get("properties", {}))
    return found


def record_properties(spec: dict, read_path: str, is_array: Callable[[dict], bool]) -> dict[str, dict] | None:
    """The properties of one record that a catalogue read path returns (a page's ``results`` when
    ``is_array`` says the results are a list); ``None`` when the spec has no such read."""
    operation = spec["paths"].get(spec_path(read_path), {}).get("get")
    if operation is None:
        return None
    response = resolve(spec, operation["responses"]["200"])
    found = properties(spec, response["content"]["application/json"]["schema"])
    results = found.get("results")
    if results is not None and is_array(results):  # a page: the records are its results
        found = properties(spec, resolve(spec, results)["items"])
    return found


def write_per_type(path: str | Path, by_type: dict[str, Any]) -> None:
    """Write ``{data_type: fields}`` as JSON, one data type a line (readable diffs after a spec update)."""
    lines = [f"{json.dumps(key)}: {json.dumps(fields)}" for key, fields in by_type.items()]
    Path(path).write_text("{\n" + ",\n".join(lines) + "\n}\n")
    print(f"wrote {path}")
