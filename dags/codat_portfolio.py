"""The portfolio path: Codat syncs on its own schedule, webhooks say what changed, windows read and merge it.

Set-up (docs/webhooks.md, "The portfolio path"): Codat's sync schedules set per company
(``CodatSyncSettingsOperator``), the receiver with ``[codat] webhook_route = portfolio``, and these two DAGs:

- ``codat_portfolio_changes``: one run per window of deliveries (``codat://portfolio-changes``): one read per
  changed type (pages of 5,000), no refresh, no ``dataStatus``, one Delta commit per type per window.
- ``codat_portfolio_sweep``: daily; reads only what webhooks missed (a receiver down longer than Codat retries).
"""

from __future__ import annotations

from airflow_provider_codat.portfolio.dag import build_changes_dag, build_sweep_dag

codat_portfolio_changes = build_changes_dag()
codat_portfolio_sweep = build_sweep_dag()
