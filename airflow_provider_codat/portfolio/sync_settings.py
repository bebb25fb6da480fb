"""Codat's per-company sync schedules, read and set so that Codat syncs the types a deployment lands by itself.

Plain functions (:func:`plan_settings`, :func:`apply_schedules`) and the Airflow adapter
(:class:`CodatSyncSettingsOperator`). Setting is idempotent: a company whose settings already say what is wanted
costs one read and no write. The write carries every data type's setting (Codat's spec asks for "a syncSetting
object for each data type" and does not say what happens to the types left out), so it means the same under
either reading of that sentence.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_codat.datatypes import get_data_type
from airflow_provider_codat.defaults import DEFAULT_CONN_ID
from airflow_provider_codat.errors import CodatError, CodatValidationError
from airflow_provider_codat.safe_repr import shorten
from airflow_provider_codat.values import CompanyId

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_codat.hooks.codat import CodatHook

log = logging.getLogger(__name__)

# Codat's portal offers hourly, daily, weekly and monthly; 0 turns the schedule off.
HOURLY, DAILY, WEEKLY, MONTHLY = 1, 24, 24 * 7, 24 * 30
MAX_SCHEDULE_HOURS = 24 * 31


def check_schedules(schedules: Any) -> dict[str, int]:
    """``{data_type: hours}`` checked: catalogue keys, whole hours from 0 (no schedule) to a month.

    :raises CodatValidationError: anything else, before any request.
    """
    if not isinstance(schedules, Mapping) or not schedules:
        raise CodatValidationError(
            f"schedules must be a non-empty mapping of data type to hours, e.g. {{'invoices': 24}}, got "
            f"{shorten(schedules)}."
        )
    checked: dict[str, int] = {}
    for key, hours in schedules.items():
        entry = get_data_type(key)
        if not isinstance(hours, int) or isinstance(hours, bool) or not 0 <= hours <= MAX_SCHEDULE_HOURS:
            raise CodatValidationError(
                f"The schedule of {entry.key} must be whole hours from 0 (none) to {MAX_SCHEDULE_HOURS}, got "
                f"{shorten(hours)}."
            )
        checked[entry.key] = hours
    return checked


@dataclass
class SettingsPlan:
    """What a company's settings need.

    :param settings: every setting to write (the current ones with the wanted schedules).
    :param changes: ``{data_type: (hours before or None, hours wanted)}`` for the types that differ.
    """

    settings: list[dict[str, Any]]
    changes: dict[str, tuple[int | None, int]] = field(default_factory=dict)

    @property
    def needed(self) -> bool:
        return bool(self.changes)


def plan_settings(current: Mapping[str, Any], schedules: Mapping[str, int]) -> SettingsPlan:
    """The settings to write so that each type in ``schedules`` syncs every so many hours; no change when the
    current settings already say so.

    :param current: ``GET /companies/{id}/syncSettings`` as Codat answered.
    :param schedules: checked ``{data_type: hours}``.
    """
    settings = [dict(s) for s in current.get("settings") or [] if isinstance(s, dict)]
    by_type = {s.get("dataType"): s for s in settings}
    changes: dict[str, tuple[int | None, int]] = {}
    next_order = max((s.get("syncOrder") or 0 for s in settings), default=-1) + 1
    for key, hours in schedules.items():
        setting = by_type.get(key)
        if setting is None:
            setting = {
                "dataType": key,
                "fetchOnFirstLink": get_data_type(key).fetch_on_first_link,
                "syncSchedule": hours,
                "syncOrder": next_order,
            }
            next_order += 1
            settings.append(setting)
            changes[key] = (None, hours)
        elif setting.get("syncSchedule") != hours:
            changes[key] = (setting.get("syncSchedule"), hours)
            setting["syncSchedule"] = hours
    return SettingsPlan(settings, changes)


def apply_schedules(hook: CodatHook, company_id: CompanyId, schedules: Mapping[str, int]) -> dict[str, Any]:
    """Read one company's settings and write them only when a schedule differs.

    :returns: ``{"company_id", "written": bool, "changes": {type: [before, after]}}``.
    """
    plan = plan_settings(hook.get_company_sync_settings(company_id), schedules)
    if plan.needed:
        hook.set_company_sync_settings(company_id, plan.settings, overrides_defaults=True)
        log.info("Company %s: sync schedules set: %s", company_id, _describe(plan.changes))
    return {
        "company_id": str(company_id),
        "written": plan.needed,
        "changes": {k: [before, after] for k, (before, after) in plan.changes.items()},
    }


def _describe(changes: Mapping[str, tuple[int | None, int]]) -> str:
    return ", ".join(f"{key} {before}h -> {after}h" for key, (before, after) in sorted(changes.items()))


class CodatSyncSettingsOperator(BaseOperator):
    """Make Codat sync each listed data type of each company every so many hours, on its own schedule.

    One ``GET /companies/{id}/syncSettings`` per company, and one ``POST`` only for the companies whose settings
    differ (idempotent: run it again and nothing is written). Run it when companies join the portfolio (or
    daily over the list of companies: a company already set costs one read).

    Returns ``{"written": [...], "unchanged": [...], "failed": {company: reason}}`` and fails at the end when a
    company failed (the others are set).

    :param company_ids: the companies (UUIDs), a list or an XCom of one. Templated.
    :param schedules: ``{data_type: hours}``, e.g. ``{"invoices": 24, "payments": 24}`` (0 turns a type's
        schedule off). Templated.
    :param codat_conn_id: the Airflow connection to Codat.
    """

    template_fields: Sequence[str] = ("company_ids", "schedules")
    ui_color = "#e8f4fb"

    def __init__(
        self,
        *,
        company_ids: Sequence[str] | str,
        schedules: Mapping[str, int] | str,
        codat_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.company_ids = company_ids
        self.schedules = schedules
        self.codat_conn_id = codat_conn_id
        if not _templated(schedules):
            check_schedules(schedules)
        if not _templated(company_ids):
            _company_ids(company_ids)

    @cached_property
    def hook(self) -> CodatHook:
        from airflow_provider_codat.hooks.codat import CodatHook

        return CodatHook(codat_conn_id=self.codat_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        schedules = check_schedules(self.schedules)
        companies = _company_ids(self.company_ids)  # every id checked before the first request
        written: list[str] = []
        unchanged: list[str] = []
        failed: dict[str, str] = {}
        for company_id in companies:
            try:
                outcome = apply_schedules(self.hook, company_id, schedules)
            except CodatError as exc:
                log.error("Company %s: its sync settings could not be set: %s", company_id, exc)
                failed[str(company_id)] = str(exc)
                continue
            (written if outcome["written"] else unchanged).append(str(company_id))
        log.info(
            "Sync settings: %d companies written, %d already as wanted, %d failed",
            len(written),
            len(unchanged),
            len(failed),
        )
        if failed:
            raise CodatError(
                f"The sync settings of {len(failed)} of {len(companies)} companies could not be set: "
                + "; ".join(f"{company}: {reason}" for company, reason in list(failed.items())[:5])
            )
        return {"written": written, "unchanged": unchanged, "failed": failed}


def _templated(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _company_ids(value: Any) -> list[CompanyId]:
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise CodatValidationError(f"company_ids must be a list of company ids, got {shorten(value)}.")
    return list(dict.fromkeys(CompanyId.parse(item, "company_ids") for item in value))
