"""Codat's ``client.rateLimit.reached`` and ``client.rateLimit.reset``: the client's daily quota ran out, or
was renewed.

:func:`note_rate_limit_event` is the one place these land in the receiver: it logs them and returns the
``codat://rate-limit`` asset event that the receiver stores with the delivery (so every process, and any task
declaring the asset as an inlet, can see the latest state). The shared request budget hooks in here.
"""

from __future__ import annotations

import logging
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
