"""The tasks of ``codat_on_change``: turn the asset events Codat's webhooks created into extract targets.

A run is started by one or many asset events on ``codat://{dataType}`` (the scheduler folds every event since
the previous run into one run). Only the events the webhook receiver created count (``extra.source``): the
extract's own outlet events on the same assets carry no company to act on. Plain Python behind ``@task``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from airflow.sdk import get_current_context, task

from airflow_provider_codat.assets import asset_uri
from airflow_provider_codat.datatypes import CATALOGUE, get_data_type
from airflow_provider_codat.errors import CodatValidationError
from airflow_provider_codat.landing.destination import resolve_destination
from airflow_provider_codat.values import CompanyId
from airflow_provider_codat.webhooks.events import EVENT_SOURCE

log = logging.getLogger(__name__)


def watched_asset_uris(data_types: Iterable[str] | None = None) -> list[str]:
    """``codat://{dataType}`` for ``data_types`` (default: every catalogue type), for a DAG's schedule."""
    return [asset_uri(key) for key in (data_types or CATALOGUE)]


def pairs_from_extras(extras: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """The distinct ``{company_id, data_type}`` pairs named by webhook events, in a stable order; events from
    elsewhere and entries that do not name a known company id and data type are left out."""
    found: set[tuple[str, str]] = set()
    for extra in extras:
        if not isinstance(extra, Mapping) or extra.get("source") != EVENT_SOURCE:
            continue
        try:
            company_id = CompanyId.parse(extra.get("company_id"))
            data_type = get_data_type(extra.get("data_type"))
        except CodatValidationError:
            log.warning("Skipping a webhook asset event without a valid company id and data type")
            continue
        found.add((str(company_id), data_type.key))  # plain str: the pairs leave as XCom
    return [{"company_id": company, "data_type": data_type} for company, data_type in sorted(found)]


@task
def changed_pairs() -> list[dict[str, str]]:
    """What to extract in this run: the (company, data type) pairs of its triggering webhook events, each with
    the destination (the run's ``destination`` Param, else the ``codat_destination`` Variable)."""
    context = get_current_context()
    events = context.get("triggering_asset_events") or {}
    extras = [event.extra or {} for sequence in events.values() for event in sequence]
    pairs = pairs_from_extras(extras)
    destination = resolve_destination((context.get("params") or {}).get("destination"))
    log.info("%d webhook events name %d (company, data type) pairs to extract", len(extras), len(pairs))
    # A read.completed event is Codat's word that the type synced: the extract needs no dataStatus call.
    return [{**pair, "destination": destination, "known_synced": True} for pair in pairs]
