"""The simulator as connection ``codat_default`` (``tests/sync/conftest.py``), for the portfolio tests."""

from __future__ import annotations

from tests.sync.conftest import company_id, sim  # noqa: F401 (fixtures)
