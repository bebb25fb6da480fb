"""Hooks of the Codat provider: :class:`~airflow_provider_codat.hooks.codat.CodatHook` and its errors.

Names are loaded lazily so that ``airflow_provider_codat.hooks.errors`` can be imported on its own (the query
and validation helpers use it) without pulling in the hook.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "CodatAPIError",
    "CodatDatasetInProgressError",
    "CodatHook",
    "CodatPagingError",
    "CodatValidationError",
]


def __getattr__(name: str) -> Any:
    if name == "CodatHook":
        from airflow_provider_codat.hooks.codat import CodatHook

        return CodatHook
    if name in __all__:
        from airflow_provider_codat.hooks import errors

        return getattr(errors, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
