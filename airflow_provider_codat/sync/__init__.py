"""The sync side in one place: what a wait is for, how a data type's sync is judged, the wait itself, and the
refresh the operators adapt to Airflow.

* :mod:`.status`: the status vocabulary (:class:`SyncStatus`, terminal sets) and the checked answers.
* :mod:`.decision`: per-type decisions and the verdict over all types.
* :mod:`.ticket`: the refresh's ticket (:class:`Ticket`) and :class:`WaitSpec`, validated in full.
* :mod:`.interval`: the pace (:func:`next_interval`) and the one :data:`CLOCK`.
* :mod:`.watcher`: :class:`SyncWatcher`, one poll with as few calls as possible.
* :mod:`.wait`: :class:`Wait` and the one loop shape (:func:`run`, :func:`arun`), events and their resolution.
* :mod:`.queueing`: queue refreshes (:func:`~.queueing.queue_data_types`, :func:`~.queueing.refresh_all_data`)
  and return the ticket.

Refresh, wait and extract of whole companies (:mod:`airflow_provider_codat.company_sync`) sit above this package
and :mod:`airflow_provider_codat.extract`, so neither imports the other's orchestration.

The Airflow adapters (``CodatSyncSensor``, ``CodatSyncTrigger``, the refresh operators, the company sync) sit on
top; nothing here imports them. The hook comes in as an argument; only :mod:`.queueing` makes calls of its own
(queue, ``data/all``), and it is not imported here: ``from airflow_provider_codat.sync import ...`` stays light.
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
