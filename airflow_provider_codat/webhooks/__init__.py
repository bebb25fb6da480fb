"""Codat's signed webhooks as Airflow asset events: the receiver the ``codat_webhooks`` plugin mounts at
``/codat/webhooks`` on Airflow's API server (docs/webhooks.md)."""
