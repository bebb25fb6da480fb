"""Without ../shared/codat-oas, the spec tests skip saying where Codat's specs are expected and what they are."""

from __future__ import annotations

import pytest

from tests import oas


def test_a_missing_spec_skips_naming_where_it_is_expected(monkeypatch, tmp_path):
    monkeypatch.setattr(oas, "OAS_DIR", tmp_path / "shared" / "codat-oas")
    with pytest.raises(pytest.skip.Exception) as skipped:
        oas.load_spec.__wrapped__("Codat-Lending.json")  # past the cache: as a clone without the folder
    reason = str(skipped.value)
    assert "Codat-Lending.json" in reason and "Codat's public OpenAPI specifications" in reason
    assert "../shared/codat-oas beside the project root" in reason and str(tmp_path) in reason
    assert "tests/oas.py" in reason


def test_the_specs_folder_is_beside_the_project_root():
    project_root = oas.Path(oas.__file__).resolve().parents[1]
    assert project_root.parent / "shared" / "codat-oas" == oas.OAS_DIR
