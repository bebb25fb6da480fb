"""The request budget every Codat request of this provider spends from: a per-minute rate shared by every
process of a deployment, places in flight per company, and Codat's daily quota (see :mod:`.request_budget`)."""

from __future__ import annotations

from airflow_provider_codat.budget.quota import Quota
from airflow_provider_codat.budget.request_budget import RequestBudget, budget_for
from airflow_provider_codat.budget.settings import BudgetSettings, budget_settings_from

__all__ = ["BudgetSettings", "Quota", "RequestBudget", "budget_for", "budget_settings_from"]
