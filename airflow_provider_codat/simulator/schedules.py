"""Sync settings and Codat's own sync schedule: ``/profile/syncSettings``, ``/companies/{id}/syncSettings``, and
syncs that start by themselves every ``syncSchedule`` hours.

The shapes are the OpenAPI spec's (``SyncSetting``: ``dataType``, ``fetchOnFirstLink``, ``syncSchedule`` in hours,
``syncOrder``, optional ``syncFromUtc``/``syncFromWindow``/``monthsToSync``/``isLocked``; ``CompanySyncSettings``:
``companyId``, ``settings``, ``overridesDefaults``). Codat documents the POST as "include a syncSetting object for
each data type" without saying what happens to types left out: **undocumented**, so the simulator merges (the
types posted replace their settings, the others keep theirs) and a caller that wants to be safe under either
reading posts every type (the provider's operator does). ``overridesDefaults: false`` drops the company's own
settings (the client's apply again).

The client's settings carry no schedule (``syncSchedule: 0``: Codat's portal says the default frequency is
None), so only a company's own settings start syncs, and only when the state is built with
``scheduled_syncs=True`` (tests that move the clock by days would otherwise see syncs nobody queued). Then each
(company, type) whose setting has ``syncSchedule > 0`` is
synced ``syncSchedule`` hours after its previous sync was requested; a type whose previous sync is older than one
period starts at a phase of its own within the next period (derived from the seed and the ids), so a portfolio's
syncs spread over the day as they do at Codat. Whether a scheduled sync brings changes is drawn once per company
and day (``change_fraction``): a company with changes that day changes every type it syncs that day. Syncs are
found lazily (a heap of due times looked at when the state settles), so a thousand companies cost nothing per
request.
"""

from __future__ import annotations

import hashlib
import heapq
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow_provider_codat.datatypes import CATALOGUE
from airflow_provider_codat.simulator.clock import date_ticks
from airflow_provider_codat.simulator.error_bodies import SimulatorError

if TYPE_CHECKING:
    from airflow_provider_codat.simulator.world import SimulatorState

CLIENT_ID = "8f0a2d3c-1b4e-4c5d-9e6f-7a8b9c0d1e2f"
# Codat's portal: "By default, Sync frequency is set to None" (codat-docs/data-type-settings.md).
DEFAULT_SCHEDULE_HOURS = 0
_REQUIRED = {"dataType": str, "fetchOnFirstLink": bool, "syncSchedule": int, "syncOrder": int}
_OPTIONAL_INT = ("syncFromWindow", "monthsToSync")
# Hours the simulator accepts: Codat's portal offers hourly, daily, weekly and monthly (0 = no schedule).
MAX_SCHEDULE_HOURS = 24 * 31


def client_settings() -> list[dict[str, Any]]:
    """The client's settings (``/profile/syncSettings``): every catalogue type, no schedule (Codat's default
    frequency is None), history as Codat's defaults."""
    return [
        {
            "dataType": entry.key,
            "fetchOnFirstLink": entry.fetch_on_first_link,
            "syncSchedule": DEFAULT_SCHEDULE_HOURS,
            "syncOrder": order,
            "syncFromWindow": 24,
            "monthsToSync": 24,
            "isLocked": False,
        }
        for order, entry in enumerate(CATALOGUE.values())
    ]


def checked_setting(item: Any) -> dict[str, Any]:
    """One ``SyncSetting`` of a POST body, checked as the spec types it; a 400 otherwise."""
    if not isinstance(item, dict):
        raise SimulatorError(400, "Each sync setting must be an object.")
    for name, kind in _REQUIRED.items():
        value = item.get(name)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise SimulatorError(400, f"Sync setting field {name} is required and must be a {kind.__name__}.")
    if item["dataType"] not in CATALOGUE:
        raise SimulatorError(400, f"Unknown data type {item['dataType']!r} in sync settings.")
    if not 0 <= item["syncSchedule"] <= MAX_SCHEDULE_HOURS:
        raise SimulatorError(400, f"syncSchedule must be 0-{MAX_SCHEDULE_HOURS} hours.")
    setting = {name: item[name] for name in _REQUIRED}
    for name in _OPTIONAL_INT:
        if item.get(name) is not None:
            if not isinstance(item[name], int) or isinstance(item[name], bool):
                raise SimulatorError(400, f"Sync setting field {name} must be an integer.")
            setting[name] = item[name]
    if item.get("syncFromUtc") is not None:
        if not isinstance(item["syncFromUtc"], str) or date_ticks(item["syncFromUtc"]) is None:
            raise SimulatorError(400, "syncFromUtc must be a date-time.")
        setting["syncFromUtc"] = item["syncFromUtc"]
    if item.get("isLocked") is not None:
        setting["isLocked"] = bool(item["isLocked"])
    return setting


class Schedules:
    """The company sync settings of a :class:`SimulatorState` and the syncs they start.

    :param state: the state (its lock guards everything here).
    :param enabled: start scheduled syncs (``scheduled_syncs``).
    :param change_fraction: the share of companies whose scheduled syncs of a day bring changes.
    """

    def __init__(self, state: SimulatorState, *, enabled: bool, change_fraction: float) -> None:
        if not 0.0 <= change_fraction <= 1.0:
            raise ValueError("change_fraction must be between 0 and 1.")
        self.state = state
        self.enabled = enabled
        self.change_fraction = change_fraction
        self.overrides: dict[str, dict[str, dict[str, Any]]] = {}
        self._heap: list[tuple[float, str, str]] = []
        self._due: dict[tuple[str, str], float] = {}
        self.started = 0

    # -- the settings ---------------------------------------------------------------------------------
    def company_settings(self, company_id: str) -> dict[str, Any]:
        """``GET /companies/{id}/syncSettings``."""
        self.state.company(company_id)
        own = self.overrides.get(company_id)
        settings = {s["dataType"]: dict(s) for s in client_settings()}
        for key, setting in (own or {}).items():
            settings[key] = dict(setting)
        return {"companyId": company_id, "settings": list(settings.values()), "overridesDefaults": bool(own)}

    def set_company_settings(self, company_id: str, body: Any) -> None:
        """``POST /companies/{id}/syncSettings``: checked whole before anything changes."""
        self.state.company(company_id)
        if not isinstance(body, dict):
            raise SimulatorError(400, "The body must be a CompanySyncSettings object.")
        for name in ("companyId", "settings", "overridesDefaults"):
            if name not in body:
                raise SimulatorError(400, f"{name} is required.")
        if str(body["companyId"]).lower() != company_id.lower():
            raise SimulatorError(400, "companyId in the body does not match the path.")
        if not isinstance(body["settings"], list) or not isinstance(body["overridesDefaults"], bool):
            raise SimulatorError(400, "settings must be a list and overridesDefaults a boolean.")
        settings = [checked_setting(item) for item in body["settings"]]
        if not body["overridesDefaults"]:
            self.overrides.pop(company_id, None)
        else:
            own = self.overrides.setdefault(company_id, {})
            for setting in settings:
                own[setting["dataType"]] = setting
        self._plan_company(company_id)

    def schedule_hours(self, company_id: str, key: str) -> int:
        """The schedule in force for a company's type: its own setting, else the client's (none)."""
        own = self.overrides.get(company_id, {}).get(key)
        return int(own["syncSchedule"]) if own is not None else DEFAULT_SCHEDULE_HOURS

    # -- scheduled syncs ------------------------------------------------------------------------------
    def _plan_company(self, company_id: str) -> None:
        if not self.enabled:
            return
        for key in self.overrides.get(company_id, {}):
            self._plan(company_id, key)

    def _plan(self, company_id: str, key: str) -> None:
        """Put the next scheduled sync of a type on the heap (replacing any earlier plan)."""
        hours = self.schedule_hours(company_id, key)
        if hours <= 0:
            self._due.pop((company_id, key), None)
            return
        period = hours * 3600.0
        now = self.state.clock.timestamp()
        entry = self.state._status.get((company_id, key))
        last = entry[0].requested.timestamp() if entry else None
        if last is None or last + period < now:
            due = now + _phase(self.state.seed, company_id, key) * period
        else:
            due = last + period
        self._due[(company_id, key)] = due
        heapq.heappush(self._heap, (due, company_id, key))

    def start_due(self) -> None:
        """Queue every scheduled sync due by now (called from ``settle``, under the state's lock)."""
        if not self.enabled or not self._heap:
            return
        now = self.state.clock.timestamp()
        while self._heap and self._heap[0][0] <= now:
            due, company_id, key = heapq.heappop(self._heap)
            if self._due.get((company_id, key)) != due:
                continue  # replaced by a later plan
            del self._due[(company_id, key)]
            self._start(company_id, key, due)
            hours = self.schedule_hours(company_id, key)
            if hours > 0:
                following = due + hours * 3600.0
                self._due[(company_id, key)] = following
                heapq.heappush(self._heap, (following, company_id, key))

    def _start(self, company_id: str, key: str, due: float) -> None:
        state = self.state
        data_type = CATALOGUE[key]
        company = state.companies.get(company_id)
        if company is None or state.running_dataset(company_id, key) is not None:
            return
        connections = state._connections_for(company, data_type)
        if not connections or connections[0]["status"] != "Linked":
            return  # Codat syncs nothing for a type the company's platforms lack, or a connection to re-link
        requested = datetime.fromtimestamp(due, tz=state.clock.now().tzinfo)
        dataset = state._new_dataset(company_id, connections[0]["id"], key, requested)
        dataset.changes = self.changes_on(company_id, requested)
        state._pending.append(dataset)
        self.started += 1

    def changes_on(self, company_id: str, moment: datetime) -> bool:
        """Whether the company's scheduled syncs bring changes on ``moment``'s day (drawn once per day)."""
        if self.change_fraction >= 1.0:
            return True
        return _fraction(self.state.seed, company_id, moment.date().isoformat()) < self.change_fraction

    def next_due(self) -> float | None:
        """The epoch second of the next scheduled sync, if any."""
        return min(self._due.values()) if self._due else None


def _fraction(seed: int, *parts: str) -> float:
    digest = hashlib.sha256("/".join((str(seed), *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _phase(seed: int, company_id: str, key: str) -> float:
    """Where in its period a type's first scheduled sync falls, in [0, 1): one phase per company (its types
    sync together, as a company's schedule does at Codat), spread over the period."""
    del key
    return _fraction(seed, "phase", company_id)
