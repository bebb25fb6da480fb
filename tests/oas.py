"""Codat's OpenAPI specs from ../shared/codat-oas, for tests that check facts against them.

The specs are Codat's public OpenAPI documents (``Codat-Platform.json``, ``Codat-Lending.json``), kept as
data in the ``shared/codat-oas`` folder that sits beside the project root (``../shared/codat-oas`` from the
repository). A clone without that folder skips the tests that need them, each saying so.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

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
