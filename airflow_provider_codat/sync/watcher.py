"""The watcher: one poll of a wait, as few calls as possible.

One poll = one ``dataStatus`` call for any number of types, plus ``data/history/{id}`` only for the types
``dataStatus`` cannot decide. Sync (:meth:`SyncWatcher.poll`) and async (:meth:`SyncWatcher.apoll`) twins share
every decision; only the two hook calls differ.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from airflow_provider_codat.sync import decision as d
from airflow_provider_codat.sync.status import NOT_SYNCED, check_data_status, check_operation
from airflow_provider_codat.sync.ticket import WaitSpec
from airflow_provider_codat.timestamps import parse_timestamp

# A history answer of "still running" is trusted while dataStatus shows the same entry, but not forever:
# every this many polls it is asked again.
LOOKUP_REFRESH_POLLS = 4


@dataclass
class PollResult:
    """One poll's view: finished types with their outcome, the rest with the status seen."""

    outcomes: dict[str, dict[str, Any]] = field(default_factory=dict)
    pending: dict[str, str] = field(default_factory=dict)
    calls: int = 0

    @property
    def done(self) -> bool:
        return not self.pending


class SyncWatcher:
    """Polls ``dataStatus`` for a :class:`WaitSpec` and decides each type with :mod:`.decision`.

    It remembers, per type, the ``dataStatus`` entry for which ``data/history`` last said "still running", so a
    lagging ``dataStatus`` does not cost one extra call per type on every poll. A type once finished stays
    finished: later syncs do not change the answer for this wait.

    :param spec: what to wait for.
    """

    def __init__(self, spec: WaitSpec) -> None:
        self.spec = spec
        self._synced_after: datetime | None = parse_timestamp(spec.synced_after)
        self._finished: dict[str, dict[str, Any]] = {}
        self._lookups: dict[str, tuple[tuple, str, int]] = {}
        self.polls = 0

    @property
    def _unfinished(self) -> list[str]:
        return [t for t in self.spec.types if t not in self._finished]

    def _decide(self, data_type: str, entry: dict | None) -> d.Decision:
        if data_type in self._finished:
            return d.Decision.done(self._finished[data_type])
        if self.spec.datasets is not None:
            decision = d.decide_ticket(entry, self.spec.datasets[data_type])
        else:
            decision = d.decide_since(entry, self._synced_after)
        if decision.state is d.State.LOOKUP:
            cached = self._lookups.get(data_type)
            if (
                cached is not None
                and cached[0] == d.entry_fingerprint(entry)
                and self.polls - cached[2] < LOOKUP_REFRESH_POLLS
            ):
                return d.Decision.pending(cached[1])
        return decision

    def _after_lookup(
        self, data_type: str, entry: dict | None, operation: Any, dataset_id: str
    ) -> d.Decision:
        operation = check_operation(operation, self.spec.company_id, dataset_id)
        if self.spec.datasets is not None:
            decision = d.decide_ticket_from_history(entry, self.spec.datasets[data_type], operation)
        else:
            decision = d.decide_since_from_history(entry, self._synced_after, operation)
        if decision.state is d.State.PENDING:
            self._lookups[data_type] = (d.entry_fingerprint(entry), decision.status, self.polls)
        return decision

    def _collect(self, decisions: dict[str, d.Decision], calls: int) -> PollResult:
        result = PollResult(calls=calls)
        for data_type, decision in decisions.items():
            if decision.state is d.State.DONE:
                self._finished[data_type] = decision.outcome
                result.outcomes[data_type] = decision.outcome
            else:
                result.pending[data_type] = decision.status or NOT_SYNCED
        return result

    def _first_look(self, body: Any) -> tuple[dict[str, dict | None], dict[str, d.Decision]]:
        entries = check_data_status(body, self.spec.company_id, self._unfinished) if body is not None else {}
        return entries, {t: self._decide(t, entries.get(t)) for t in self.spec.types}

    def poll(self, hook, *, deadline: float | None = None) -> PollResult:
        """One poll with the sync hook; each call is bounded by ``deadline`` (epoch seconds)."""
        self.polls += 1
        body = hook.get_data_status(self.spec.company_id, deadline=deadline) if self._unfinished else None
        calls = int(body is not None)
        entries, decisions = self._first_look(body)
        for data_type, decision in decisions.items():
            if decision.state is d.State.LOOKUP:
                operation = hook.get_pull_operation(self.spec.company_id, decision.lookup, deadline=deadline)
                calls += 1
                decisions[data_type] = self._after_lookup(
                    data_type, entries.get(data_type), operation, decision.lookup
                )
        return self._collect(decisions, calls)

    async def apoll(self, hook, *, deadline: float | None = None) -> PollResult:
        """One poll with the async hook (no blocking call)."""
        self.polls += 1
        body = (
            await hook.aget_data_status(self.spec.company_id, deadline=deadline) if self._unfinished else None
        )
        calls = int(body is not None)
        entries, decisions = self._first_look(body)
        for data_type, decision in decisions.items():
            if decision.state is d.State.LOOKUP:
                operation = await hook.aget_pull_operation(
                    self.spec.company_id, decision.lookup, deadline=deadline
                )
                calls += 1
                decisions[data_type] = self._after_lookup(
                    data_type, entries.get(data_type), operation, decision.lookup
                )
        return self._collect(decisions, calls)
