"""``_state.json``: the commit record of an extract, one per company and data type.

Writing this file is the commit. It holds:

- ``cursors``: per scope (``""`` for the company, a connection id, or ``connection/account`` for bank
  transactions), the watermark and the ids written at it: where the next run starts;
- ``last_run``: the run that committed last and its summary (for people reading the file);
- ``pending``: while a commit is being *published*, the staged part files still to be given their final names
  and the run's manifest still to be written (``extract/commit.py``). Anyone who loads the state finishes that
  work first, so a task killed between the commit and the renames loses nothing;
- ``reconciled`` (only once a reconcile committed, ``extract/reconcile.py``): when the last complete reconcile
  ran (``at``) and the sync it saw (``sync``, ``latestSuccessfulSyncId``), so that a reconcile with no sync
  since is skipped.

The file stays small whatever the data: a run's history lives in each run folder's manifest, not here, and
when more than :data:`INLINE_IDS` versions share the watermark instant (a data-model change re-stamps a whole
type at once) their ids go to a compressed side file named by its content, written before the state.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_codat.errors import StateError
from airflow_provider_codat.extract.watermark import Cursor
from airflow_provider_codat.landing.layout import STATE_FILE
from airflow_provider_codat.landing.manifest import replace_file

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

STATE_VERSION = 2
INLINE_IDS = 1000
IDS_FOLDER = "_watermark_ids"  # a folder of its own, so that finding stale files lists only them


@dataclass
class ExtractState:
    """The content of ``_state.json``.

    :param company_id: the company.
    :param data_type: the Codat data type key.
    :param cursors: where the next run starts, per scope.
    :param last_run: the last committed run: ``run_id`` and its ``summary``.
    :param pending: the publication of the last commit, while unfinished: ``run_id``, ``run_folder``,
        ``moves`` (``[staged name, final name]`` pairs inside the run folder) and ``summary``.
    :param reconciled: the last complete reconcile: ``at`` (its instant) and ``sync`` (the sync it saw).
    """

    company_id: str
    data_type: str
    cursors: dict[str, Cursor] = field(default_factory=dict)
    last_run: dict[str, Any] | None = None
    pending: dict[str, Any] | None = None
    reconciled: dict[str, Any] | None = None

    def committed(
        self,
        run_id: str,
        cursors_after: dict[str, Cursor],
        summary: dict[str, Any],
        pending: dict[str, Any],
        reconciled: dict[str, Any] | None = None,
    ) -> ExtractState:
        """The state once ``run_id`` commits, with its publication still to do.

        :param run_id: the Airflow run id.
        :param cursors_after: the cursors after the run.
        :param summary: what the run returns (records, files, watermarks...).
        :param pending: the publication to do (see the class).
        :param reconciled: a reconcile's new ``reconciled`` entry; ``None`` keeps the one there.
        """
        return ExtractState(
            self.company_id,
            self.data_type,
            dict(cursors_after),
            {"run_id": run_id, "summary": summary},
            pending,
            reconciled or self.reconciled,
        )

    def published(self) -> ExtractState:
        return ExtractState(
            self.company_id, self.data_type, self.cursors, self.last_run, None, self.reconciled
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
        if not isinstance(data, dict) or data.get("version") not in (1, STATE_VERSION):
            raise StateError(f"unsupported state (expected an object with version {STATE_VERSION})")
        cursors = data.get("cursors") or {}
        if not isinstance(cursors, dict):
            raise StateError("`cursors` must be an object")
        pending = data.get("pending")
        if pending is not None and not (isinstance(pending, dict) and "run_folder" in pending):
            raise StateError("`pending` must be an object with a run_folder")
        last_run = data.get("last_run")
        reconciled = data.get("reconciled")
        if reconciled is not None and not isinstance(reconciled, dict):
            raise StateError("`reconciled` must be an object")
        return ExtractState(
            company_id=str(data.get("company_id")),
            data_type=str(data.get("data_type")),
            cursors={str(scope): _cursor_from_json(folder, value) for scope, value in cursors.items()},
            last_run={"run_id": last_run["run_id"], "summary": last_run.get("summary")} if last_run else None,
            pending=pending,
            reconciled=reconciled,
        )
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise StateError(
            f"Cannot read the extract state {path}: {exc}. Fix or remove the file (removing it, or passing "
            "full_refresh=True, makes the next run read everything again)."
        ) from None


def save_state(folder: ObjectStoragePath, state: ExtractState) -> None:
    """Write ``folder/_state.json`` so that a reader sees either the old or the new content, never half.

    Side files of large id sets are written first (a file of the same content already there is reused); the
    state then goes to a temporary name and is moved over the old file: a rename on local and POSIX-like file
    systems; on object stores, where a move is a copy, the single-object write of the copy is itself all or
    nothing. Side files no longer referenced are removed afterwards.

    :param folder: ``{destination}/{company_id}/{data_type}``.
    :param state: the state to write.
    """
    folder.mkdir(parents=True, exist_ok=True)
    keep: set[str] = set()
    cursors = {}
    for scope, cursor in sorted(state.cursors.items()):
        cursors[scope] = _cursor_to_json(folder, cursor, keep)
    content = {
        "version": STATE_VERSION,
        "company_id": state.company_id,
        "data_type": state.data_type,
        "cursors": cursors,
        "last_run": state.last_run,
        "pending": state.pending,
    }
    if state.reconciled is not None:  # written only once a reconcile committed: older files stay as they were
        content["reconciled"] = state.reconciled
    body = json.dumps(
        content,
        indent=1,
        sort_keys=True,
    )
    replace_file(folder / STATE_FILE, body.encode())
    side = folder / IDS_FOLDER
    if keep or side.exists():
        for stale in side.iterdir():
            if f"{IDS_FOLDER}/{stale.name}" not in keep:
                stale.unlink()


def _cursor_to_json(folder: ObjectStoragePath, cursor: Cursor, keep: set[str]) -> dict[str, Any]:
    if len(cursor.ids_at_watermark) <= INLINE_IDS:
        return cursor.to_json()
    ids = sorted(cursor.ids_at_watermark)
    content = json.dumps(ids, separators=(",", ":")).encode()
    name = f"{IDS_FOLDER}/{hashlib.sha256(content).hexdigest()[:24]}.json.gz"
    keep.add(name)
    path = folder / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(path, gzip.compress(content, compresslevel=6, mtime=0))
    return {"watermark": cursor.watermark, "ids_file": name, "ids_count": len(ids)}


def _cursor_from_json(folder: ObjectStoragePath, data: Any) -> Cursor:
    if not isinstance(data, dict):
        raise StateError("each cursor must be an object")
    name = data.get("ids_file")
    if name is None:
        return Cursor.from_json(data)
    if not isinstance(name, str) or not name.startswith(IDS_FOLDER + "/") or ".." in name:
        raise StateError("`ids_file` must name a side file of the state")
    ids = json.loads(gzip.decompress((folder / name).read_bytes()))
    if not isinstance(ids, list) or len(ids) != data.get("ids_count"):
        raise StateError(
            f"the side file {name} does not hold the {data.get('ids_count')} ids the state names"
        )
    return Cursor.from_json({"watermark": data.get("watermark"), "ids_at_watermark": ids})
