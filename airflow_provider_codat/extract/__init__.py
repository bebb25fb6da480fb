"""The building blocks of :class:`~airflow_provider_codat.operators.extract.CodatExtractOperator`."""

from __future__ import annotations
