"""The walls between the provider's packages: the landing is the one thing the extract and the tables share."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "airflow_provider_codat"


def _imported_modules(folder: str) -> dict[str, set[str]]:
    """Per module of ``folder``, the provider modules it imports (at any depth of the code)."""
    found: dict[str, set[str]] = {}
    for path in sorted((PACKAGE / folder).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
        found[str(path.relative_to(PACKAGE))] = {n for n in names if n.startswith("airflow_provider_codat.")}
    return found


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [
        ("tables", ("extract",)),
        ("extract", ("tables",)),
        ("landing", ("extract", "tables", "operators", "company_sync")),
    ],
)
def test_a_package_does_not_import_what_it_must_not(folder, forbidden):
    prefixes = tuple(f"airflow_provider_codat.{name}" for name in forbidden)
    crossing = {
        module: sorted(name for name in names if name.startswith(prefixes))
        for module, names in _imported_modules(folder).items()
    }
    assert {module: names for module, names in crossing.items() if names} == {}


def test_the_walls_are_read_from_real_imports():
    # Guards the test above against reading nothing: the extract and the tables do import the landing.
    for folder in ("extract", "tables"):
        imported = set().union(*_imported_modules(folder).values())
        assert any(name.startswith("airflow_provider_codat.landing.") for name in imported)
