"""Reconcile: land a deletion for each record Codat dropped without a trace, by a full read of each scope.

Codat flags a deleted record (``metadata.isDeleted``) on accounting types only. Bank transactions and every
banking and commerce type simply lose the record, so an incremental read by ``modifiedDate`` never learns that
it is gone. A reconcile reads every page of each scope the landing holds records of (no ``modifiedDate``
filter), compares the ids Codat holds with the ids live in the landing (``extract/landed.py``), and lands:

- a **tombstone** for each live id Codat no longer has: the last version landed, with
  ``metadata.isDeleted: true`` and ``_codat.reconciledAt`` (the instant; it says the version comes from the
  reconcile, not from Codat), so the tables and the DuckDB recipe drop it like any deletion;
- a **return** for each id a reconcile tombstoned that Codat has again: Codat's record as it is now, with
  ``_codat.reconciledAt``, so it is live again even when its ``modifiedDate`` did not move.

A type read whole every run (``commerce-products``, ``-locations``, ``-transactions``) needs no request: the
run's own extract read every page of every scope, so the ids it landed are what Codat holds. Its reconcile
compares the landing with that run (committed, or there is nothing to compare), scope by scope; a scope the run
landed nothing for concludes nothing (empty, or gone: the run does not say which).

Never from a partial read: a scope whose read fails or does not read whole (``read_whole``) lands nothing. A
scope the landing holds but Codat no longer lists (a bank account, a connection) is emptied only when reading
it answers 404: a listing that misses it is not proof.

The versions land in run ``reconcile__{run_id}`` (its own run folder, beside the extract's) and are committed
like an extract run (``extract/commit.py``): a retry of a committed reconcile returns its summary, a killed one
leaves staged files that the retry removes, so each tombstone lands once. ``_state.json`` keeps the sync the
last complete reconcile saw (``reconciled``): with no successful sync of the type since, nothing has changed
in Codat and the reconcile is skipped without a request.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from airflow_provider_codat.datatypes import Kind
from airflow_provider_codat.errors import CodatExtractError, CodatQuotaExhaustedError, CodatValidationError
from airflow_provider_codat.extract.commit import publish, remove_staged
from airflow_provider_codat.extract.keyset import read_whole
from airflow_provider_codat.extract.landed import LandedVersion, current_versions
from airflow_provider_codat.extract.plan import ReadScope, list_scopes
from airflow_provider_codat.extract.state import ExtractState, load_state, save_state
from airflow_provider_codat.extract.synced import sync_fingerprint
from airflow_provider_codat.extract.writer import PartWriter
from airflow_provider_codat.landing.layout import (
    part_name,
    reconcilable_types,
    reconcile_run_id,
    run_folder_name,
)
from airflow_provider_codat.landing.manifest import read_manifest
from airflow_provider_codat.landing.parts import decode_records, read_part_file
from airflow_provider_codat.landing.records import RECONCILED_AT, scope_key
from airflow_provider_codat.timestamps import format_timestamp

if TYPE_CHECKING:
    from airflow_provider_codat.extract.request import ExtractRequest
    from airflow_provider_codat.hooks.codat import CodatHook

log = logging.getLogger(__name__)

FULL_READ_PAGE_SIZE = (
    5000  # Codat's largest page: a full read of a scope of up to 5,000 records is one request
)
RECONCILED, SKIPPED = "reconciled", "skipped"


@dataclass
class ScopeRead:
    """The full read of one scope.

    :param scope: where it was read.
    :param ids: every id Codat holds there; ``None`` when the read failed (nothing is concluded from it).
    :param back: Codat's records of the ids a reconcile had tombstoned, by id.
    :param gone: Codat answered 404 for a scope it no longer lists: it holds nothing there.
    """

    scope: ReadScope
    ids: set[str] | None = None
    back: dict[str, dict[str, Any]] = field(default_factory=dict)
    pages: int = 0
    gone: bool = False
    error: str | None = None


def reconcile_type(
    hook: CodatHook,
    request: ExtractRequest,
    *,
    status: dict[str, Any] | None = None,
    page_size: int = FULL_READ_PAGE_SIZE,
    now: Callable[[], datetime] | None = None,
) -> dict[str, Any]:
    """Reconcile one company's data type with Codat, committed as run ``reconcile__{request.run_id}``.

    :param hook: the Codat hook.
    :param request: the extract's request of the same run (its folder, scope and page settings).
    :param status: the type's ``dataStatus`` entry as last seen (read when ``None``).
    :param page_size: records per request of the full reads (Codat's largest page by default: fewest requests).
    :param now: the clock of ``extractedAt`` and ``reconciledAt`` (tests pin it).
    :returns: plain JSON: ``status`` (``reconciled`` or ``skipped`` with a ``reason``), ``tombstoned``,
        ``returned``, ``pages``, ``files``, ``scopes`` (read whole), ``gone_scopes`` and ``failed_scopes``
        (scope key -> error; nothing was concluded for them).
    :raises CodatValidationError: the type carries Codat's own deleted flag, or is a snapshot.
    """
    if not reconcilable_types([request.data_type.key]):
        raise CodatValidationError(
            f"{request.data_type.key} needs no reconcile: Codat flags its deletions, or it is a snapshot."
        )
    extract_run = request.run_folder  # a type read whole: this run's read is what Codat holds
    run_id = reconcile_run_id(request.run_id)
    request = dataclasses.replace(
        request, run_id=run_id, run_folder_name=run_folder_name(run_id), page_size=page_size
    )
    label = f"Reconcile of {request.data_type.key} for company {request.company_id}"
    state = publish(request.type_folder, _load_state(request))
    manifest = read_manifest(request.run_folder)
    if manifest is not None:
        log.info("%s: run %s committed earlier; its summary is returned", label, run_id)
        return dict(manifest.get("summary") or {})
    if status is None:
        status = hook.get_data_status(request.company_id).get(request.data_type.key)
    reason = _skip_reason(status, state)
    if reason:
        log.info("%s: skipped, %s", label, reason)
        return {**_base_summary(request), "status": SKIPPED, "reason": reason}
    whole_run = read_manifest(extract_run) if request.data_type.kind is Kind.FULL else None
    if request.data_type.kind is Kind.FULL and whole_run is None:
        reason = f"run {request.run_id} has committed no extract of the type to compare with"
        log.info("%s: skipped, %s", label, reason)
        return {**_base_summary(request), "status": SKIPPED, "reason": reason}
    landed = current_versions(request.type_folder)
    if whole_run is not None:
        reads = _reads_of_run(whole_run, landed)
    else:
        reads = _read_scopes(hook, request, landed, label)
    stamp = format_timestamp((now or (lambda: datetime.now(UTC)))())
    return _commit(request, state, _changes(landed, reads, stamp), reads, (status, stamp), label)


def _load_state(request: ExtractRequest) -> ExtractState:
    return load_state(request.type_folder, str(request.company_id), request.data_type.key)


def _skip_reason(status: dict[str, Any] | None, state: ExtractState) -> str | None:
    """Why there is nothing to reconcile now (``None``: reconcile)."""
    synced = list(sync_fingerprint(status))
    if not any(synced):
        return "Codat has no successful sync of the type"
    last = state.reconciled or {}
    if last.get("sync") == synced:
        return f"no successful sync since the last reconcile ({last.get('at')})"
    return None


def _base_summary(request: ExtractRequest) -> dict[str, Any]:
    return {
        "company_id": str(request.company_id),
        "data_type": request.data_type.key,
        "run_id": request.run_id,
    }


def _read_scopes(
    hook: CodatHook, request: ExtractRequest, landed: dict[str, dict[str, LandedVersion]], label: str
) -> list[ScopeRead]:
    """Read whole every scope holding something to check: live records, or tombstones a reconcile landed.

    A scope Codat does not list (any more) is read too: only a 404 there says it is gone.
    """
    wanted = {
        key: {ident for ident, v in versions.items() if v.deleted and v.reconciled}
        for key, versions in landed.items()
        if any(not v.deleted or v.reconciled for v in versions.values())
        and (request.connection_id is None or key.split("/")[0] == str(request.connection_id))
    }
    if not wanted:
        return []
    listed = {
        s.key: s for s in list_scopes(hook, request.company_id, request.data_type, request.connection_id)
    }
    reads = []
    for key in sorted(wanted):
        scope = listed.get(key) or _scope_of(key)
        reads.append(_read_scope(hook, request, scope, wanted[key], listed=key in listed))
        if reads[-1].error:
            log.warning("%s: scope %s not reconciled, nothing concluded: %s", label, key, reads[-1].error)
    return reads


def _reads_of_run(manifest: dict[str, Any], landed: dict[str, dict[str, LandedVersion]]) -> list[ScopeRead]:
    """The ids a committed extract run of a type read whole landed (its ``manifest`` lists the files), per scope
    the landing holds. A scope the run landed nothing for is left out: empty or gone, the run does not say."""
    read: dict[str, set[str]] = {}
    for uri in (manifest.get("summary") or {}).get("files") or ():
        for record in decode_records(read_part_file(uri)):
            if record.get("id") not in (None, ""):
                read.setdefault(scope_key(record.get("_codat") or {}), set()).add(str(record["id"]))
    return [ScopeRead(_scope_of(key), ids=ids) for key, ids in sorted(read.items()) if key in landed]


def _scope_of(key: str) -> ReadScope:
    """The scope of a state key the listing no longer shows."""
    connection, _, account = key.partition("/")
    return ReadScope(key=key, connection_id=connection or None, account_id=account or None)


def _read_scope(
    hook: CodatHook, request: ExtractRequest, scope: ReadScope, back_ids: set[str], *, listed: bool
) -> ScopeRead:
    """Every id Codat holds in ``scope`` (and the records of ``back_ids``), or why not."""
    read = ScopeRead(scope, ids=set())
    pages = partial(
        hook.iter_pages,
        request.company_id,
        request.data_type,
        page_size=request.page_size,
        connection_id=scope.connection_id,
        account_id=scope.account_id,
    )
    what = f"{request.data_type.key} records of company {request.company_id} ({scope.key})"
    try:
        for page in read_whole(pages, what):
            read.pages += 1
            for record in page:
                ident = record.get("id")
                if ident is not None and ident != "":
                    read.ids.add(str(ident))
                    if str(ident) in back_ids:
                        read.back[str(ident)] = record
    except CodatQuotaExhaustedError:
        raise  # the caller pauses for the reset; nothing of this reconcile is committed
    except Exception as exc:  # whatever the failure, this scope concludes nothing
        if not listed and getattr(exc, "status_code", None) == 404:
            return ScopeRead(scope, ids=set(), pages=read.pages + 1, gone=True)
        return ScopeRead(scope, pages=read.pages, error=f"{type(exc).__name__}: {exc}")
    return read


@dataclass
class _Changes:
    records: list[dict[str, Any]] = field(default_factory=list)
    tombstoned: int = 0
    returned: int = 0


def _changes(landed: dict[str, dict[str, LandedVersion]], reads: list[ScopeRead], stamp: str) -> _Changes:
    """The versions to land: a tombstone per live id Codat lacks, a return per tombstoned id it has again."""
    changes = _Changes()
    for read in reads:
        if read.ids is None:
            continue
        for ident, version in sorted(landed.get(read.scope.key, {}).items()):
            if not version.deleted and ident not in read.ids:
                changes.records.append(_tombstone(version.record, stamp))
                changes.tombstoned += 1
            elif version.deleted and version.reconciled and ident in read.back:
                changes.records.append(_returned(read.back[ident], version.record, stamp))
                changes.returned += 1
    return changes


def _tombstone(landed: dict[str, Any], stamp: str) -> dict[str, Any]:
    """The last landed version, deleted, from the reconcile at ``stamp``."""
    record = {name: value for name, value in landed.items() if name != "_codat"}
    metadata = record.get("metadata")
    record["metadata"] = {**(metadata if isinstance(metadata, dict) else {}), "isDeleted": True}
    record["_codat"] = _lineage(landed, stamp)
    return record


def _returned(codat: dict[str, Any], landed: dict[str, Any], stamp: str) -> dict[str, Any]:
    """Codat's record as it is now, live again, landed by the reconcile at ``stamp``."""
    return {**codat, "_codat": _lineage(landed, stamp)}


def _lineage(landed: dict[str, Any], stamp: str) -> dict[str, Any]:
    lineage = {name: value for name, value in (landed.get("_codat") or {}).items() if name != RECONCILED_AT}
    lineage["extractedAt"] = stamp
    lineage[RECONCILED_AT] = stamp
    return lineage


def _commit(
    request: ExtractRequest,
    state: ExtractState,
    changes: _Changes,
    reads: list[ScopeRead],
    seen: tuple[dict[str, Any] | None, str],
    label: str,
) -> dict[str, Any]:
    """Stage the versions, commit them (the state names the files to publish), publish, return the summary."""
    token = uuid.uuid4().hex[:12]
    remove_staged(request.run_folder)  # what earlier attempts of this run staged and never committed
    staged = _stage(request, changes.records, token)
    moves = [[path.name, part_name(index)] for index, path in enumerate(staged)]
    summary = _summary(request, changes, reads, [str(request.run_folder / final) for _, final in moves])
    if _load_state(request) != state:
        remove_staged(request.run_folder, token)
        raise CodatExtractError(
            f"{label}: another extract or reconcile of the type committed meanwhile, so this one committed "
            "nothing. Retry it; run one extract or reconcile per company and data type at a time."
        )
    status, stamp = seen
    complete = not summary["failed_scopes"]  # a scope left unread is read again next time, whatever the syncs
    reconciled = {"at": stamp, "sync": list(sync_fingerprint(status))} if complete else None
    pending = {
        "run_id": request.run_id,
        "run_folder": request.run_folder_name,
        "moves": moves,
        "summary": summary,
    }
    committed = state.committed(request.run_id, state.cursors, summary, pending, reconciled)
    save_state(request.type_folder, committed)  # the commit
    publish(request.type_folder, committed)
    log.info(
        "%s: %d tombstones and %d records back, from %d pages over %d scopes (%d gone, %d not read whole)",
        label,
        changes.tombstoned,
        changes.returned,
        summary["pages"],
        summary["scopes"],
        len(summary["gone_scopes"]),
        len(summary["failed_scopes"]),
    )
    return summary


def _stage(request: ExtractRequest, records: list[dict[str, Any]], token: str) -> list[Any]:
    """Write ``records`` to staged part files; on any failure remove them."""
    writer = PartWriter(request.run_folder, compresslevel=request.compresslevel, token=token)
    try:
        with writer:
            writer.write(records)
    except BaseException:
        remove_staged(request.run_folder, token)
        raise
    return list(writer.files)


def _summary(
    request: ExtractRequest, changes: _Changes, reads: list[ScopeRead], files: list[str]
) -> dict[str, Any]:
    return {
        **_base_summary(request),
        "status": RECONCILED,
        "tombstoned": changes.tombstoned,
        "returned": changes.returned,
        "records": len(changes.records),
        "pages": sum(read.pages for read in reads),
        "files": files,
        "scopes": sum(1 for read in reads if read.ids is not None),
        "gone_scopes": [read.scope.key for read in reads if read.gone],
        "failed_scopes": {read.scope.key: read.error for read in reads if read.error},
    }
