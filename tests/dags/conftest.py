"""The simulator as connection ``codat_default`` and simulated time, shared with the refresh-and-wait tests."""

from __future__ import annotations

from tests.sync.conftest import company_id, sim, sim_clock  # noqa: F401 (fixtures)
