"""Hooks of the Codat provider: :class:`~airflow_provider_codat.hooks.codat.CodatHook` and its errors."""

from __future__ import annotations

from airflow_provider_codat.errors import (
    CodatAPIError,
    CodatDatasetInProgressError,
    CodatPagingError,
    CodatValidationError,
)
from airflow_provider_codat.hooks.codat import CodatHook

__all__ = [
    "CodatAPIError",
    "CodatDatasetInProgressError",
    "CodatHook",
    "CodatPagingError",
    "CodatValidationError",
]
