"""Pytest plugin: the codat_simulator fixture (filled in by the simulator work)."""

from __future__ import annotations
