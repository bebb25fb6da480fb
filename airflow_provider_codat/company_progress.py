"""Where a company sync stands: :class:`CompanySyncProgress`, handed to a deferral and read back after it.

A deferred task keeps its progress as plain JSON (the trigger's ``next_kwargs``, and an XCom backup for runners
that keep only the event). :meth:`CompanySyncProgress.to_json` writes the same keys the previous release wrote as
a bare dict, and :meth:`CompanySyncProgress.from_json` reads both, so a task paused by either release resumes
under the other.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from airflow_provider_codat.errors import CodatValidationError
from airflow_provider_codat.safe_repr import shorten

REFRESH_MODES = ("queue", "all", "none")
# The JSON key of the stage a task paused in for the daily quota (the previous release's name for it).
PAUSED_IN = "paused_for_quota_in"
PAUSE_STAGES = ("refresh", "advance")


def check_refresh(refresh: Any, where: str = "") -> str:
    """``refresh`` when it is one of :data:`REFRESH_MODES`, else :class:`CodatValidationError` (a ``ValueError``).

    :param refresh: ``"queue"``, ``"all"`` or ``"none"``.
    :param where: what the value belongs to (a DAG id), named first in the error.
    """
    if refresh not in REFRESH_MODES:
        prefix = f"{where}: " if where else ""
        raise CodatValidationError(
            f"{prefix}refresh must be one of 'queue', 'all' or 'none', got {shorten(refresh)}."
        )
    return refresh


@dataclass(frozen=True)
class CompanySyncOptions:
    """How each company is synced: checked values, kept in the progress across a deferral.

    :param refresh: ``"queue"`` (one ``data/queue`` per type), ``"all"`` (``data/all``) or ``"none"``.
    :param include_deleted: keep records deleted in the source.
    :param full_refresh: ignore the saved watermarks.
    :param page_size: records per request.
    :param max_concurrency: data types of a company read at once.
    :param poll_interval: first interval between two looks at the syncs, seconds.
    :param max_poll_interval: the interval's cap, seconds.
    :param reconcile: the types to reconcile after their extract (``extract/reconcile.py``): full reads that
        land a tombstone for each record Codat dropped without a flag.
    """

    refresh: str
    include_deleted: bool
    full_refresh: bool
    page_size: int
    max_concurrency: int
    poll_interval: float
    max_poll_interval: float
    reconcile: Sequence[str] = ()

    def __post_init__(self) -> None:
        check_refresh(self.refresh)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "reconcile": list(self.reconcile)}


@dataclass
class CompanySyncs:
    """One company's syncs: those still waited for, and the outcome of each type whose wait ended.

    :param datasets: ``{type: dataset id}`` still to wait for (empty once the wait ended).
    :param outcomes: ``{type: outcome}`` of the syncs that finished (``status``, ``error_message``, ...).
    """

    datasets: dict[str, str] = field(default_factory=dict)
    outcomes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def settle(self, outcomes: dict[str, dict[str, Any]]) -> None:
        """Note the outcomes of the wait, which is over."""
        self.outcomes.update(outcomes)
        self.datasets = {}

    def to_json(self) -> dict[str, Any]:
        return {"datasets": dict(self.datasets), "outcomes": dict(self.outcomes)}

    @classmethod
    def from_json(cls, value: Any) -> CompanySyncs:
        value = _mapping(value, "a company's syncs")
        return cls(dict(value.get("datasets") or {}), dict(value.get("outcomes") or {}))


@dataclass
class CompanySyncProgress:
    """A company sync's progress: what it was asked, where it is, what each company gave.

    :param companies: the company ids, in order.
    :param types: the catalogue keys.
    :param destination: the landing's destination URI.
    :param run_id: the run, which names the run folders.
    :param options: how each company is synced.
    :param deadline: epoch seconds by which the waits end.
    :param started_at: epoch seconds the waits pace themselves from.
    :param refresh_began: epoch seconds the refresh began (a refresh resumed after the quota's reset does not
        queue again what synced since).
    :param index: the company being waited for or extracted.
    :param syncs: per company refreshed, its syncs.
    :param results: per company done (or failed), ``{type: outcome}``.
    :param paused_in: the stage the daily quota paused the task in (``refresh``, ``advance``), else ``None``.
    """

    companies: list[str]
    types: list[str]
    destination: str
    run_id: str
    options: CompanySyncOptions
    deadline: float
    started_at: float
    refresh_began: float
    index: int = 0
    syncs: dict[str, CompanySyncs] = field(default_factory=dict)
    results: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    paused_in: str | None = None

    @property
    def current(self) -> str:
        """The company being waited for or extracted."""
        return self.companies[self.index]

    @property
    def finished(self) -> bool:
        return self.index >= len(self.companies)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON, the keys the previous release wrote (the pause stage only while paused)."""
        value: dict[str, Any] = {
            "companies": list(self.companies),
            "types": list(self.types),
            "destination": self.destination,
            "run_id": self.run_id,
            "options": self.options.to_json(),
            "deadline": self.deadline,
            "started_at": self.started_at,
            "refresh_began": self.refresh_began,
            "index": self.index,
            "syncs": {key: syncs.to_json() for key, syncs in self.syncs.items()},
            "results": self.results,
        }
        if self.paused_in is not None:
            value[PAUSED_IN] = self.paused_in
        return value

    @classmethod
    def from_json(cls, value: Any) -> CompanySyncProgress:
        """The progress a deferral kept: this release's :meth:`to_json`, or the previous release's dict (its
        JSON text too).

        :raises CodatValidationError: naming what is missing or malformed.
        """
        if isinstance(value, str | bytes):
            try:
                value = json.loads(value)
            except ValueError:
                raise CodatValidationError(
                    f"The company sync's progress is not JSON: {shorten(value)}."
                ) from None
        value = _mapping(value, "the company sync's progress")
        try:
            started_at = float(value["started_at"])
            paused_in = value.get(PAUSED_IN)
            if paused_in is not None and paused_in not in PAUSE_STAGES:
                raise ValueError(f"{PAUSED_IN} is {shorten(paused_in)}")
            return cls(
                companies=[str(key) for key in value["companies"]],
                types=[str(key) for key in value["types"]],
                destination=str(value["destination"]),
                run_id=str(value["run_id"]),
                options=CompanySyncOptions(**_mapping(value["options"], "the options")),
                deadline=float(value["deadline"]),
                started_at=started_at,
                refresh_began=float(value.get("refresh_began", started_at)),
                index=int(value.get("index") or 0),
                syncs={str(k): CompanySyncs.from_json(v) for k, v in (value.get("syncs") or {}).items()},
                results={str(k): dict(v) for k, v in (value.get("results") or {}).items()},
                paused_in=paused_in,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            if isinstance(exc, CodatValidationError):
                raise
            raise CodatValidationError(
                f"The company sync's progress cannot be resumed ({type(exc).__name__}: {shorten(str(exc))})."
            ) from None


def _mapping(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CodatValidationError(f"{what} must be an object, got {shorten(value)}.")
    return value
