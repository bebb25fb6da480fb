"""Codat's OpenAPI specs from ../shared/codat-oas, for tests that check facts against them."""

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
        pytest.skip(
            f"Codat's OpenAPI specs are not available at {OAS_DIR} (the shared/ folder beside the repo)"
        )
    return json.loads(path.read_text())
