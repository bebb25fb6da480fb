"""One extract run of one data type for one company: read, stage, commit, publish.

The steps, and why each is where it is (``docs/extract.md`` tells the whole story):

1. Load ``_state.json``, finishing any publication a killed task left half done (``extract/commit.py``). If this
   run already committed (its run folder has a manifest), return the manifest's summary: committed files are
   never removed or rewritten, however the run is retried or cleared.
2. ``dataStatus`` before: a type with no successful sync is an error telling the user to queue a refresh.
3. One *pass* (``extract/pass_reader.py``): read every scope (incremental types by keyset on ``modifiedDate``,
   ``extract/keyset.py``) and stream what the exactly-once filter keeps into staged part files, which no reader
   takes for data.
4. For full types (offset paging, no ``modifiedDate``), ``dataStatus`` after: if a sync completed during the
   pass, the pages may have shifted, so the pass is thrown away and read again (bounded).
5. Commit (write ``_state.json``), then publish (rename the staged files, write the manifest). Anything that
   stops the task before the commit leaves the old state and only staged files.

The request carries checked values (:class:`~airflow_provider_codat.values.CompanyId`, the catalogue's
:class:`~airflow_provider_codat.datatypes.DataType`); what leaves for storage or Airflow (the summary, the state,
the records' ``_codat``) is plain ``str``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow_provider_codat.datatypes import Kind
from airflow_provider_codat.errors import CodatDataNotSyncedError, CodatExtractError
from airflow_provider_codat.extract.commit import publish, remove_staged
from airflow_provider_codat.extract.pass_reader import PassResult, read_pass
from airflow_provider_codat.extract.request import ExtractRequest
from airflow_provider_codat.extract.state import ExtractState, load_state, save_state
from airflow_provider_codat.extract.synced import check_synced, sync_fingerprint
from airflow_provider_codat.extract.watermark import Cursor
from airflow_provider_codat.landing.layout import part_name
from airflow_provider_codat.landing.manifest import read_manifest
from airflow_provider_codat.landing.records import instant_key

if TYPE_CHECKING:
    from airflow_provider_codat.hooks.codat import CodatHook

log = logging.getLogger(__name__)

__all__ = [
    "CodatDataNotSyncedError",
    "CodatExtractError",
    "ExtractRequest",
    "run_extract",
]


def run_extract(
    hook: CodatHook,
    request: ExtractRequest,
    *,
    now: Callable[[], datetime] | None = None,
    read_status: Callable[[], dict[str, dict]] | None = None,
) -> dict[str, Any]:
    """Run one extract and return its summary (also stored in the state).

    :param hook: the Codat hook.
    :param request: what to extract and where.
    :param now: the clock for ``extractedAt`` (tests pin it).
    :param read_status: returns the company's ``dataStatus``; called before the read and after each pass.
        Default: ``hook.get_data_status``. A caller extracting several types of one company passes one that
        shares a single read between them.
    :raises CodatDataNotSyncedError: the type was never synced for the company.
    :raises CodatExtractError: syncs kept completing during every pass.
    """
    now = now or (lambda: datetime.now(UTC))
    label = f"{request.data_type.key} of company {request.company_id}"
    state = publish(request.type_folder, _load_state(request))
    committed_before = _committed_summary(request, label)
    if committed_before is not None:
        return committed_before
    read_status = read_status or (lambda: hook.get_data_status(request.company_id))
    start = _start_cursors(request, state, label)
    before = _status_before(request, read_status)
    if not check_synced(before, request.company_id, request.data_type.key):
        log.warning(
            "%s: Codat reports the data type as not supported by the company's platform; nothing to extract.",
            label,
        )
        return _summary(request, start, start, PassResult())
    remove_staged(request.run_folder)  # what earlier attempts of this run staged and never committed
    result, passes = _read_until_consistent(hook, request, start, before, now, read_status, label)
    return _commit(request, state, start, result, label, passes)


def _load_state(request: ExtractRequest) -> ExtractState:
    return load_state(request.type_folder, str(request.company_id), request.data_type.key)


def _committed_summary(request: ExtractRequest, label: str) -> dict[str, Any] | None:
    """The summary of this run when it committed earlier (its manifest says so), else ``None``."""
    manifest = read_manifest(request.run_folder)
    if manifest is None:
        return None
    log.warning(
        "%s: run %s committed earlier; its files stay as they are and its summary is returned. Use a new "
        "run (or full_refresh=True in a new run) to read again.",
        label,
        request.run_id,
    )
    return dict(manifest.get("summary") or {})


def _start_cursors(request: ExtractRequest, state: ExtractState, label: str) -> dict[str, Cursor]:
    """Where the read starts per scope: the saved cursors, or nothing on a full refresh."""
    if request.full_refresh:
        log.info("%s: full refresh, the saved watermarks are ignored and will be replaced", label)
        return {}
    return dict(state.cursors)


def _status_before(
    request: ExtractRequest, read_status: Callable[[], dict[str, dict]]
) -> dict[str, Any] | None:
    """The type's ``dataStatus`` entry before the read."""
    if request.known_synced and request.data_type.kind is not Kind.FULL:
        # The caller knows a sync of the type completed (a webhook said so): no dataStatus call at all. A 409
        # while reading would still say otherwise, clearly.
        return {"latestSuccessfulSyncId": "known"}
    return read_status().get(request.data_type.key)


def _read_until_consistent(
    hook: CodatHook,
    request: ExtractRequest,
    start: dict[str, Cursor],
    before: dict[str, Any] | None,
    now: Callable[[], datetime],
    read_status: Callable[[], dict[str, dict]],
    label: str,
) -> tuple[PassResult, int]:
    """Read passes until one is consistent; return it and how many passes were read.

    Keyset reads cannot lose records that move, and snapshots are one object: their first pass is kept. A
    full type's pass is kept when no sync completed while it was read (``dataStatus`` after it).
    """
    data_type = request.data_type
    passes = 0
    while True:
        passes += 1
        result = read_pass(hook, request, start, now(), label, uuid.uuid4().hex[:12])
        if data_type.kind is not Kind.FULL:
            return result, passes
        after = read_status().get(data_type.key)
        if sync_fingerprint(after) == sync_fingerprint(before):
            return result, passes
        log.warning(
            "%s: a sync completed while the pages were read (dataStatus moved from %s to %s); pages may have "
            "shifted, so pass %d is discarded and read again.",
            label,
            sync_fingerprint(before)[0],
            sync_fingerprint(after)[0],
            passes,
        )
        remove_staged(request.run_folder, result.token)
        before = after
        if passes >= request.max_passes:
            raise CodatExtractError(
                f"Syncs of {data_type.key!r} for company {request.company_id} completed during each of {passes} "
                "reads, so no consistent read was possible and nothing was committed. Run the extract again "
                "once the syncs have finished (or raise max_passes)."
            )


def _commit(
    request: ExtractRequest,
    state: ExtractState,
    start: dict[str, Cursor],
    result: PassResult,
    label: str,
    passes: int,
) -> dict[str, Any]:
    """Commit the pass (write the state naming the files to publish), publish it, and return the summary."""
    cursors_after = dict(start)
    cursors_after.update(result.cursors)
    moves = [[staged.name, part_name(index)] for index, staged in enumerate(result.staged)]
    result.files = [str(request.run_folder / final) for _, final in moves]
    summary = _summary(request, start, cursors_after, result)
    _check_no_commit_since(request, state, result.token)
    pending = {
        "run_id": request.run_id,
        "run_folder": request.run_folder_name,
        "moves": moves,
        "summary": summary,
    }
    committed = state.committed(request.run_id, cursors_after, summary, pending)
    save_state(request.type_folder, committed)  # the commit
    publish(request.type_folder, committed)
    log.info(
        "%s: committed %d records (%d deleted) from %d pages in %d files; %d versions already written were "
        "skipped; watermark %s -> %s (pass %d)",
        label,
        result.records,
        result.deleted,
        result.pages,
        len(result.files),
        result.skipped,
        summary["watermark_from"],
        summary["watermark_to"],
        passes,
    )
    return summary


def _check_no_commit_since(request: ExtractRequest, state: ExtractState, token: str) -> None:
    """Fail, removing this pass's files, when another extract committed since ``state`` was loaded.

    Committing on top of it would write its versions twice. The retry starts from the state that extract left.
    """
    if _load_state(request) != state:
        remove_staged(request.run_folder, token)
        raise CodatExtractError(
            f"Another extract of {request.data_type.key!r} for company {request.company_id} committed while "
            f"this run ({request.run_id}) was reading, so this run committed nothing. Retry it; and run one "
            "extract per company and data type at a time."
        )


def _summary(
    request: ExtractRequest, start: dict[str, Cursor], after: dict[str, Cursor], result: PassResult
) -> dict[str, Any]:
    """What the run returns, in plain values (it goes to XCom, the state, the manifest and asset extras)."""
    return {
        "company_id": str(request.company_id),
        "data_type": request.data_type.key,
        "records": result.records,
        "deleted": result.deleted,
        "pages": result.pages,
        "files": list(result.files),
        "watermark_from": _lowest(start) if request.data_type.incremental else None,
        "watermark_to": _highest(after) if request.data_type.incremental else None,
    }


def _lowest(cursors: dict[str, Cursor]) -> str | None:
    """The earliest starting watermark over the scopes; ``None`` if any scope started from nothing."""
    marks = [cursor.watermark for cursor in cursors.values()]
    if not marks or any(mark is None for mark in marks):
        return None
    return min(marks, key=instant_key)


def _highest(cursors: dict[str, Cursor]) -> str | None:
    marks = [cursor.watermark for cursor in cursors.values() if cursor.watermark]
    return max(marks, key=instant_key) if marks else None
