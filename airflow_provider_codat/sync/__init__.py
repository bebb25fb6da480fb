"""The sync side in one place: what a wait is for, how a data type's sync is judged, the wait itself, and the
refresh and per-company work the operators adapt to Airflow.

* :mod:`.status`: the status vocabulary (:class:`SyncStatus`, terminal sets) and the checked answers.
* :mod:`.decision`: per-type decisions and the verdict over all types.
* :mod:`.ticket`: the refresh's ticket (:class:`Ticket`) and :class:`WaitSpec`, validated in full.
* :mod:`.interval`: the pace (:func:`next_interval`) and the one :data:`CLOCK`.
* :mod:`.watcher`: :class:`SyncWatcher`, one poll with as few calls as possible.
* :mod:`.wait`: :class:`Wait` and the one loop shape (:func:`run`, :func:`arun`), events and their resolution.
* :mod:`.refresh`: queue refreshes (:func:`~.refresh.queue_data_types`, :func:`~.refresh.refresh_all_data`) and
  return the ticket.
* :mod:`.company`: :class:`~.company.CompanySync`, refresh, wait and extract per company over a JSON-able
  progress.

The Airflow adapters (``CodatSyncSensor``, ``CodatSyncTrigger``, the refresh operators, the company sync) sit on
top; nothing here imports them. The hook comes in as an argument; only :mod:`.refresh` and :mod:`.company` make
calls of their own (queue, ``data/all``), and they are not imported here: ``from airflow_provider_codat.sync
import ...`` stays light.
"""

from __future__ import annotations

from airflow_provider_codat.sync.interval import (
    CLOCK,
    DEFAULT_MAX_POLL_INTERVAL,
    DEFAULT_POLL_INTERVAL,
    Clock,
)
from airflow_provider_codat.sync.status import FAILED, FINISHED, SUCCEEDED, WARNED, SyncStatus
from airflow_provider_codat.sync.ticket import Ticket, WaitSpec, normalize_data_types, parse_ticket
from airflow_provider_codat.sync.wait import Wait, arun, finish, resolve_event, run
from airflow_provider_codat.sync.watcher import PollResult, SyncWatcher

__all__ = [
    "CLOCK",
    "DEFAULT_MAX_POLL_INTERVAL",
    "DEFAULT_POLL_INTERVAL",
    "FAILED",
    "FINISHED",
    "SUCCEEDED",
    "WARNED",
    "Clock",
    "PollResult",
    "SyncStatus",
    "SyncWatcher",
    "Ticket",
    "Wait",
    "WaitSpec",
    "arun",
    "finish",
    "normalize_data_types",
    "parse_ticket",
    "resolve_event",
    "run",
]
