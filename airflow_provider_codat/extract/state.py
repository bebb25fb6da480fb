"""``_state.json``: the commit record of an extract, one per company and data type.

The file is written last, after every data file of the run is complete; writing it is the commit. It holds:

- ``cursors``: per scope (``""`` for the company, a connection id, or ``connection/account`` for bank
  transactions), the watermark and the ids written at it — where the next run starts;
- ``last_run``: the run that committed last, with the cursors it *started* from, so that a retry of that same
  run recomputes the same output from the same starting point instead of reading on from its own end;
- ``runs``: a short history of committed runs (id and summary), so that a retry of an older run, after later
  runs committed, changes nothing.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_codat.extract.watermark import Cursor

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

log = logging.getLogger(__name__)

STATE_FILE = "_state.json"
STATE_VERSION = 1
HISTORY_LENGTH = 200


class StateError(ValueError):
    """A state file that cannot be read back."""


def cursors_to_json(cursors: dict[str, Cursor]) -> dict[str, Any]:
    return {scope: cursor.to_json() for scope, cursor in sorted(cursors.items())}


def cursors_from_json(data: Any) -> dict[str, Cursor]:
    if not isinstance(data, dict):
        raise StateError("`cursors` must be an object.")
    return {str(scope): Cursor.from_json(value) for scope, value in data.items()}


@dataclass
class ExtractState:
    """The content of ``_state.json``.

    :param company_id: the company.
    :param data_type: the Codat data type key.
    :param cursors: where the next run starts, per scope.
    :param last_run: the last committed run: ``run_id``, ``cursors_before`` and its ``summary``.
    :param runs: recent committed runs, oldest first: ``{"run_id", "summary"}``.
    """

    company_id: str
    data_type: str
    cursors: dict[str, Cursor] = field(default_factory=dict)
    last_run: dict[str, Any] | None = None
    runs: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "company_id": self.company_id,
            "data_type": self.data_type,
            "cursors": cursors_to_json(self.cursors),
            "last_run": self.last_run,
            "runs": self.runs,
        }

    @classmethod
    def from_json(cls, data: Any) -> ExtractState:
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise StateError(f"Unsupported state (expected an object with version {STATE_VERSION}).")
        last_run = data.get("last_run")
        if last_run is not None:
            if not isinstance(last_run, dict) or "run_id" not in last_run:
                raise StateError("`last_run` must be an object with a run_id.")
            cursors_from_json(last_run.get("cursors_before") or {})
        runs = data.get("runs") or []
        if not isinstance(runs, list):
            raise StateError("`runs` must be a list.")
        return cls(
            company_id=str(data.get("company_id")),
            data_type=str(data.get("data_type")),
            cursors=cursors_from_json(data.get("cursors") or {}),
            last_run=last_run,
            runs=runs,
        )

    def starting_cursors_for(self, run_id: str) -> dict[str, Cursor] | None:
        """Where ``run_id`` must start: the state before it when it is the last committed run, else now.

        Returns ``None`` when ``run_id`` committed earlier and other runs committed after it: rewriting it
        would write again what those runs wrote.
        """
        if self.last_run is not None and self.last_run["run_id"] == run_id:
            return cursors_from_json(self.last_run.get("cursors_before") or {})
        if any(entry.get("run_id") == run_id for entry in self.runs):
            return None
        return dict(self.cursors)

    def summary_of(self, run_id: str) -> dict[str, Any] | None:
        for entry in reversed(self.runs):
            if entry.get("run_id") == run_id:
                return entry.get("summary")
        return None

    def committed(
        self,
        run_id: str,
        cursors_before: dict[str, Cursor],
        cursors_after: dict[str, Cursor],
        summary: dict[str, Any],
    ) -> ExtractState:
        """The state once ``run_id`` commits.

        :param run_id: the Airflow run id.
        :param cursors_before: the cursors the run started from.
        :param cursors_after: the cursors after the run.
        :param summary: what the run returns (records, files, watermarks...).
        """
        runs = [entry for entry in self.runs if entry.get("run_id") != run_id]
        runs.append({"run_id": run_id, "summary": summary})
        return ExtractState(
            company_id=self.company_id,
            data_type=self.data_type,
            cursors=dict(cursors_after),
            last_run={
                "run_id": run_id,
                "cursors_before": cursors_to_json(cursors_before),
                "summary": summary,
            },
            runs=runs[-HISTORY_LENGTH:],
        )


def load_state(folder: ObjectStoragePath, company_id: str, data_type: str) -> ExtractState:
    """Read ``folder/_state.json``, or a fresh state when there is none.

    :param folder: ``{destination}/{company_id}/{data_type}``.
    :param company_id: the company, for a fresh state.
    :param data_type: the data type, for a fresh state.
    :raises StateError: when the file exists but cannot be used (it is never silently reset).
    """
    path = folder / STATE_FILE
    if not path.exists():
        return ExtractState(company_id, data_type)
    try:
        data = json.loads(path.read_text())
        return ExtractState.from_json(data)
    except (ValueError, KeyError, TypeError) as exc:
        raise StateError(
            f"Cannot read the extract state {path}: {exc}. Fix or remove the file (removing it, or passing "
            "full_refresh=True, makes the next run read everything again)."
        ) from None


def save_state(folder: ObjectStoragePath, state: ExtractState) -> None:
    """Write ``folder/_state.json`` so that a reader sees either the old or the new content, never half.

    The content goes to a temporary name first and is then moved over the old file: a rename on local and
    POSIX-like file systems; on object stores, where a move is a copy, the single-object write of the copy is
    itself all or nothing.

    :param folder: ``{destination}/{company_id}/{data_type}``.
    :param state: the state to write.
    """
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / STATE_FILE
    body = json.dumps(state.to_json(), indent=1, sort_keys=True)
    temp = folder / f".{STATE_FILE}.{uuid.uuid4().hex}.tmp"
    temp.write_text(body)
    try:
        temp.fs.mv(temp.path, target.path)
    except Exception:
        try:
            temp.unlink()
        except Exception:
            log.warning("Could not remove the temporary state file %s", temp)
        raise
