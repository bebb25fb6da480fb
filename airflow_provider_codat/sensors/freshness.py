"""CodatFreshnessSensor: wait until a company's data types are recent enough, and recent together."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_provider_codat.defaults import DEFAULT_CONN_ID
from airflow_provider_codat.links import CodatCompanyLink, push_company_link
from airflow_provider_codat.operators.base import CodatHookMixin
from airflow_provider_codat.sync.interval import CLOCK
from airflow_provider_codat.sync.ticket import normalize_data_types, to_seconds
from airflow_provider_codat.timestamps import parse_timestamp
from airflow_provider_codat.version_compat import AirflowSensorTimeout

if TYPE_CHECKING:
    from airflow.sdk import Context


def assess_freshness(
    data_status: dict[str, dict],
    data_types: list[str],
    *,
    now: datetime,
    max_age: float | None,
    max_skew: float | None,
) -> tuple[dict[str, dict], list[str]]:
    """Judge each type's ``lastSuccessfulSync``.

    :returns: (type -> ``{last_successful_sync, age_seconds, fresh}``, problems: one sentence each, empty when
        every type is fresh and they are within ``max_skew`` of one another).
    """
    report: dict[str, dict] = {}
    never, stale = [], []
    moments: dict[str, datetime] = {}
    for data_type in data_types:
        entry = data_status.get(data_type) or {}
        raw = entry.get("lastSuccessfulSync")
        last = parse_timestamp(raw)
        age = (now - last).total_seconds() if last is not None else None
        fresh = last is not None and (max_age is None or age <= max_age)
        report[data_type] = {"last_successful_sync": raw, "age_seconds": age, "fresh": fresh}
        if last is None:
            never.append(data_type)
        else:
            moments[data_type] = last
            if not fresh:
                stale.append(data_type)
    problems = []
    if never:
        problems.append(f"never synced successfully: {', '.join(never)}")
    if stale:
        described = ", ".join(f"{t} ({report[t]['age_seconds']:.0f} s old)" for t in stale)
        problems.append(f"older than max_age={max_age:.0f} s: {described}")
    if max_skew is not None and len(moments) > 1:
        newest = max(moments.values())
        behind = {
            t: (newest - m).total_seconds()
            for t, m in moments.items()
            if (newest - m).total_seconds() > max_skew
        }
        if behind:
            described = ", ".join(f"{t} ({s:.0f} s behind)" for t, s in sorted(behind.items()))
            problems.append(f"synced more than max_skew={max_skew:.0f} s before the newest type: {described}")
            for data_type in behind:
                report[data_type]["fresh"] = False
    return report, problems


class CodatFreshnessSensor(CodatHookMixin, BaseSensorOperator):
    """Pass when every listed type's ``lastSuccessfulSync`` is recent enough and close to the others'.

    Codat's advice for reports built from several types: fetch them all first and compare their
    ``lastSuccessfulSync``, since data synced at different times may disagree. One ``dataStatus`` call per poke.
    While waiting, and in the timeout's message, the stale types are named. Returns (XCom) per type
    ``{last_successful_sync, age_seconds, fresh}``.

    :param company_id: the company (templated).
    :param data_types: the types to check (templated).
    :param max_age: the oldest acceptable ``lastSuccessfulSync`` (timedelta or seconds; ``None``: any age, but
        synced at least once).
    :param max_skew: the largest acceptable gap between the types' ``lastSuccessfulSync`` (``None``: no check).
    :param codat_conn_id: the Airflow connection id.
    """

    template_fields: Sequence[str] = ("company_id", "data_types")
    operator_extra_links = (CodatCompanyLink(),)
    ui_color = "#d8e8f7"

    def __init__(
        self,
        *,
        company_id: str,
        data_types: Sequence[str] | str,
        max_age: timedelta | float | None = None,
        max_skew: timedelta | float | None = None,
        codat_conn_id: str = DEFAULT_CONN_ID,
        poke_interval: timedelta | float = 300,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, **kwargs)
        self.company_id = company_id
        self.data_types = data_types
        self.max_age = to_seconds(max_age, "max_age")
        self.max_skew = to_seconds(max_skew, "max_skew")
        self.codat_conn_id = codat_conn_id
        self._last_problem = ""

    def poke(self, context: Context) -> PokeReturnValue:
        data_types = normalize_data_types(self.data_types)
        status = self.hook.get_data_status(str(self.company_id))
        now = datetime.fromtimestamp(CLOCK.now(), tz=UTC)
        report, problems = assess_freshness(
            status, data_types, now=now, max_age=self.max_age, max_skew=self.max_skew
        )
        if problems:
            self._last_problem = f"Codat data of company {self.company_id} is not fresh: " + "; ".join(
                problems
            )
            self.log.info("%s", self._last_problem)
            return PokeReturnValue(False)
        return PokeReturnValue(True, report)

    def execute(self, context: Context) -> Any:
        push_company_link(context, self.hook, str(self.company_id))
        try:
            return super().execute(context)
        except AirflowSensorTimeout as exc:
            raise AirflowSensorTimeout(f"{exc} {self._last_problem}".strip()) from exc
