"""Defaults shared by the hook, the operators, the sensors, the trigger and the DAG builders."""

from __future__ import annotations

from datetime import timedelta

# The Airflow connection to Codat when none is named (the ``codat`` connection type's default).
DEFAULT_CONN_ID = "codat_default"
# The task-side backstop on a deferral outlives the trigger's own deadline by this much: the trigger is the one
# that times out (with a message naming the running types); this only catches a trigger that never answers.
DEFERRAL_GRACE = timedelta(minutes=5)
