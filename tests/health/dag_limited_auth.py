"""Airflow's simple auth manager with per-DAG permissions, as FAB or Keycloak give them: the user ``outsider``
may read no DAG. Named in ``[core] auth_manager`` by the page's auth tests."""

from __future__ import annotations

from typing import Any

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

OUTSIDER = "outsider"


class DagLimitedAuthManager(SimpleAuthManager):
    """Everyone as the simple auth manager says, except that ``outsider`` reads no DAG."""

    def is_authorized_dag(self, *, user: Any, **kwargs: Any) -> bool:
        if user.get_name() == OUTSIDER:
            return False
        return super().is_authorized_dag(user=user, **kwargs)
