"""Codat's ``client.rateLimit.reached`` and ``client.rateLimit.reset``: the client's daily quota ran out, or
was renewed.

:func:`note_rate_limit_event` is the one place these land in the receiver: it logs them and returns the
``codat://rate-limit`` asset event that the receiver stores with the delivery (so every process, and any task
declaring the asset as an inlet, can see the latest state). :func:`feed_budget` then tells the shared request
budget (:mod:`airflow_provider_codat.budget`): a quota used up stops every worker's requests until its reset at
once, without each finding out by a 429 first; a reset lets them start again before any answer says so.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from airflow_provider_codat.assets import RATE_LIMIT_URI
from airflow_provider_codat.webhooks.lifecycle import StatusNotice

log = logging.getLogger(__name__)

RATE_LIMIT_REACHED = "client.rateLimit.reached"
RATE_LIMIT_RESET = "client.rateLimit.reset"
RATE_LIMIT_EVENTS = frozenset({RATE_LIMIT_REACHED, RATE_LIMIT_RESET})


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def note_rate_limit_event(body: dict[str, Any], common: dict[str, Any]) -> StatusNotice:
    """Log a rate-limit event and return its ``codat://rate-limit`` asset event.

    :param body: the parsed, verified body (``payload``: ``dailyQuota``, ``quotaRemaining``, ``expiryDate``;
        any of them may be missing).
    :param common: ``source``, ``webhook_id`` and ``event_type``.
    """
    payload = body.get("payload") if isinstance(body.get("payload"), dict) else {}
    expiry = payload.get("expiryDate")
    extra = {
        **common,
        "reached": common["event_type"] == RATE_LIMIT_REACHED,
        "daily_quota": _count(payload.get("dailyQuota")),
        "quota_remaining": _count(payload.get("quotaRemaining")),
        "expiry_date": expiry if isinstance(expiry, str) else None,
    }
    if extra["reached"]:
        log.warning(
            "Codat says the client's daily quota of %s requests is used up until %s",
            extra["daily_quota"],
            extra["expiry_date"],
        )
    else:
        log.info("Codat says the client's request quota was reset (%s remaining)", extra["quota_remaining"])
    return StatusNotice(RATE_LIMIT_URI, extra)


def feed_budget(extra: dict[str, Any], conn_id: str) -> None:
    """Note the quota a rate-limit event reports in the request budget of connection ``conn_id`` (read as the
    webhook secret is). A failure is logged, never raised: the delivery is stored already.

    :param extra: the event's asset event extra (:func:`note_rate_limit_event`).
    """
    from airflow.models.connection import Connection

    from airflow_provider_codat.budget import Quota, budget_for, budget_settings_from
    from airflow_provider_codat.hooks._transport import base_url_from, reset_epoch

    try:
        connection = Connection.get_connection_from_secrets(conn_id)
        settings = budget_settings_from(
            connection.extra_dejson, conn_id, base_url_from(connection.host, connection.port)
        )
        remaining = 0 if extra["reached"] else extra["quota_remaining"]
        if remaining is None:
            return  # a reset that does not say how many are left: the next answer will
        quota = Quota(extra["daily_quota"], remaining, reset_epoch(extra["expiry_date"]), time.time())
        budget_for(settings).note(quota)
    except Exception:
        log.exception(
            "Codat rate-limit event %s: the request budget could not be told", extra.get("webhook_id")
        )
