"""One extract run of one data type for one company: read, stage, commit, publish.

The steps, and why each is where it is (``docs/extract.md`` tells the whole story):

1. Load ``_state.json``, finishing any publication a killed task left half done (``extract/commit.py``). If this
   run already committed (its run folder has a manifest), return the manifest's summary: committed files are
   never removed or rewritten, however the run is retried or cleared.
2. ``dataStatus`` before: a type with no successful sync is an error telling the user to queue a refresh.
3. One *pass*: read every scope (incremental types by keyset on ``modifiedDate``, ``extract/keyset.py``) and
   stream what the exactly-once filter keeps into staged part files, which no reader takes for data.
4. For full types (offset paging, no ``modifiedDate``), ``dataStatus`` after: if a sync completed during the
   pass, the pages may have shifted, so the pass is thrown away and read again (bounded).
5. Commit (write ``_state.json``), then publish (rename the staged files, write the manifest). Anything that
   stops the task before the commit leaves the old state and only staged files.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from airflow_provider_codat.datatypes import DataType, Kind
from airflow_provider_codat.errors import CodatDataNotSyncedError, CodatExtractError, WatermarkError
from airflow_provider_codat.extract.commit import publish, read_manifest, remove_staged
from airflow_provider_codat.extract.destination import destination_path
from airflow_provider_codat.extract.keyset import iter_keyset_pages, read_whole
from airflow_provider_codat.extract.layout import run_folder_name
from airflow_provider_codat.extract.plan import ReadScope, build_query, list_scopes
from airflow_provider_codat.extract.prefetch import Prefetcher
from airflow_provider_codat.extract.state import load_state, save_state
from airflow_provider_codat.extract.status import (
    check_synced,
    not_synced_message,
    sync_fingerprint,
)
from airflow_provider_codat.extract.watermark import Cursor, VersionFilter, instant_key
from airflow_provider_codat.extract.writer import (
    DEFAULT_COMPRESSLEVEL,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_RECORDS,
    PartWriter,
    part_name,
)
from airflow_provider_codat.timestamps import format_timestamp

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_codat.hooks.codat import CodatHook
    from airflow_provider_codat.values import CompanyId

log = logging.getLogger(__name__)

DEFAULT_MAX_PASSES = 3
DEFAULT_LOG_INTERVAL = 10.0

__all__ = ["CodatDataNotSyncedError", "CodatExtractError", "ExtractRequest", "run_extract"]


@dataclass
class ExtractRequest:
    """Everything one run needs, checked by the operator beforehand.

    :param company_id: the company (a UUID).
    :param data_type: the catalogue entry.
    :param type_folder: ``{destination}/{company_id}/{data_type}``.
    :param run_id: the Airflow run id (names the run folder; a run that committed is never read again).
    :param run_folder_name: the run folder's name under ``type_folder`` (``run={run_id}``).
    :param known_synced: the caller knows a sync of the type completed (a ``read.completed`` webhook): skip the
        ``dataStatus`` check before reading (full types still check, around their offset read).
    """

    company_id: str
    data_type: DataType
    type_folder: ObjectStoragePath
    run_id: str
    run_folder_name: str
    include_deleted: bool = True
    full_refresh: bool = False
    page_size: int = 1000
    connection_id: str | None = None
    report_params: dict[str, Any] = field(default_factory=dict)
    max_passes: int = DEFAULT_MAX_PASSES
    known_synced: bool = False
    max_file_bytes: int = DEFAULT_MAX_BYTES
    max_file_records: int = DEFAULT_MAX_RECORDS
    compresslevel: int = DEFAULT_COMPRESSLEVEL
    log_interval: float = DEFAULT_LOG_INTERVAL

    @property
    def run_folder(self) -> ObjectStoragePath:
        return self.type_folder / self.run_folder_name

    @classmethod
    def for_run(
        cls,
        *,
        company_id: CompanyId,
        data_type: DataType,
        destination: str | ObjectStoragePath,
        run_id: str,
        **options: Any,
    ) -> ExtractRequest:
        """The request of one Airflow run: the folders follow from the destination, the company, the type and
        the run id (``{destination}/{company_id}/{data_type}/run={run_id}``).

        :param company_id: the checked company id.
        :param data_type: the catalogue entry.
        :param destination: a checked storage URI, or an ``ObjectStoragePath``.
        :param run_id: the Airflow run id.
        :param options: the other fields (``include_deleted``, ``page_size``, ...), already checked.
        """
        return cls(
            company_id=company_id,
            data_type=data_type,
            type_folder=destination_path(destination) / company_id / data_type.key,
            run_id=run_id,
            run_folder_name=run_folder_name(run_id),
            **options,
        )


@dataclass
class _Pass:
    """The outcome of one read of every scope."""

    files: list[str] = field(default_factory=list)
    staged: list[ObjectStoragePath] = field(default_factory=list)
    records: int = 0
    deleted: int = 0
    pages: int = 0
    skipped: int = 0
    cursors: dict[str, Cursor] = field(default_factory=dict)


class _Progress:
    """Log pages and records at a readable rate: the first page, then at most one line per interval."""

    def __init__(self, label: str, interval: float) -> None:
        self.label = label
        self.interval = interval
        self._last = None

    def page(self, pages: int, records: int, skipped: int) -> None:
        now = time.monotonic()
        if self._last is None or now - self._last >= self.interval:
            self._last = now
            log.info(
                "%s: %d pages read, %d records written so far (%d already written before, skipped)",
                self.label,
                pages,
                records,
                skipped,
            )


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
    company_id, data_type = request.company_id, request.data_type
    label = f"{data_type.key} of company {company_id}"
    state = publish(request.type_folder, load_state(request.type_folder, company_id, data_type.key))
    manifest = read_manifest(request.run_folder)
    if manifest is not None:
        log.warning(
            "%s: run %s committed earlier; its files stay as they are and its summary is returned. Use a new "
            "run (or full_refresh=True in a new run) to read again.",
            label,
            request.run_id,
        )
        return dict(manifest.get("summary") or {})
    read_status = read_status or (lambda: hook.get_data_status(company_id))
    if request.full_refresh:
        start: dict[str, Cursor] = {}
        log.info("%s: full refresh, the saved watermarks are ignored and will be replaced", label)
    else:
        start = dict(state.cursors)

    if request.known_synced and data_type.kind is not Kind.FULL:
        # The caller knows a sync of the type completed (a webhook said so): no dataStatus call at all. A 409
        # while reading would still say otherwise, clearly.
        before = {"latestSuccessfulSyncId": "known"}
    else:
        before = read_status().get(data_type.key)
    if not check_synced(before, company_id, data_type.key):
        log.warning(
            "%s: Codat reports the data type as not supported by the company's platform; nothing to extract.",
            label,
        )
        return _summary(request, start, start, _Pass())

    remove_staged(request.run_folder)  # what earlier attempts of this run staged and never committed
    passes = 0
    while True:
        passes += 1
        token = uuid.uuid4().hex[:12]
        with _fewer_gc_passes():
            result = _read_pass(hook, request, start, now(), label, token)
        if data_type.kind is not Kind.FULL:
            break  # keyset reads cannot lose records that move; snapshots are one object
        after = read_status().get(data_type.key)
        if sync_fingerprint(after) == sync_fingerprint(before):
            break
        log.warning(
            "%s: a sync completed while the pages were read (dataStatus moved from %s to %s); pages may have "
            "shifted, so pass %d is discarded and read again.",
            label,
            sync_fingerprint(before)[0],
            sync_fingerprint(after)[0],
            passes,
        )
        remove_staged(request.run_folder, token)
        before = after
        if passes >= request.max_passes:
            raise CodatExtractError(
                f"Syncs of {data_type.key!r} for company {company_id} completed during each of {passes} "
                "reads, so no consistent read was possible and nothing was committed. Run the extract again "
                "once the syncs have finished (or raise max_passes)."
            )

    cursors_after = dict(start)
    cursors_after.update(result.cursors)
    moves = [[staged.name, part_name(index)] for index, staged in enumerate(result.staged)]
    result.files = [str(request.run_folder / final) for _, final in moves]
    summary = _summary(request, start, cursors_after, result)
    if load_state(request.type_folder, company_id, data_type.key) != state:
        # Another extract of the same company and type committed while this one read: committing on top of
        # it would write its versions twice. The retry starts from the state that extract left.
        remove_staged(request.run_folder, token)
        raise CodatExtractError(
            f"Another extract of {data_type.key!r} for company {company_id} committed while this run "
            f"({request.run_id}) was reading, so this run committed nothing. Retry it; and run one extract per "
            "company and data type at a time."
        )
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


_gc_lock = threading.Lock()
_gc_readers = 0
_gc_saved: tuple[int, ...] = ()


@contextlib.contextmanager
def _fewer_gc_passes(young_threshold: int = 50_000):
    """Let the garbage collector run less often while pages are parsed.

    Parsing a page allocates tens of thousands of dicts, which at the default threshold (700) triggers a
    collection every few hundred records, and each one that cascades into the older generations rescans every
    object Airflow's imports left behind. Records and the hook's responses hold no reference cycles (see
    ``tests/hooks/test_memory.py``), so they are freed by reference counting: collecting less often costs no
    memory, only CPU saved. The collector stays enabled, and its thresholds are restored when the last of the
    reads running at once (the company operator reads types on several threads) is done.
    """
    global _gc_readers, _gc_saved
    with _gc_lock:
        if _gc_readers == 0:
            _gc_saved = gc.get_threshold()
            gc.set_threshold(max(young_threshold, _gc_saved[0]), *_gc_saved[1:])
        _gc_readers += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_readers -= 1
            if _gc_readers == 0:
                gc.set_threshold(*_gc_saved)


def _read_pass(
    hook: CodatHook,
    request: ExtractRequest,
    start: dict[str, Cursor],
    extracted_at: datetime,
    label: str,
    token: str,
) -> _Pass:
    from airflow_provider_codat.hooks.codat import CodatAPIError

    data_type = request.data_type
    result = _Pass()
    progress = _Progress(label, request.log_interval)
    stamp = format_timestamp(extracted_at)
    writer = PartWriter(
        request.run_folder,
        max_bytes=request.max_file_bytes,
        max_records=request.max_file_records,
        compresslevel=request.compresslevel,
        token=token,
    )
    try:
        with writer:
            scopes = list_scopes(hook, request.company_id, data_type, request.connection_id)
            if not scopes:
                log.warning(
                    "%s: the company has no %s connection (or no bank account) to read this type from.",
                    label,
                    data_type.source_type,
                )
            for scope in scopes:
                meta = _codat_meta(request, scope, stamp)
                if data_type.kind is Kind.SNAPSHOT:
                    report = hook.get_report(
                        request.company_id,
                        data_type.key,
                        connection_id=scope.connection_id,
                        **request.report_params,
                    )
                    report["_codat"] = meta
                    writer.write([report])
                    result.pages += 1
                    result.records += 1
                    continue
                cursor = start.get(scope.key, Cursor())
                version_filter = VersionFilter(cursor)
                accept = version_filter.accept
                with Prefetcher(_scope_pages(hook, request, scope, cursor)) as prefetched:
                    for page in prefetched:
                        kept = [record for record in page if accept(record)]
                        for record in kept:
                            record["_codat"] = meta
                            metadata = record.get("metadata")
                            if metadata and metadata.get("isDeleted") is True:
                                result.deleted += 1
                        writer.write(kept)
                        result.pages += 1
                        result.records += len(kept)
                        progress.page(result.pages, result.records, result.skipped + version_filter.skipped)
                if data_type.incremental:
                    result.cursors[scope.key] = version_filter.result()
                result.skipped += version_filter.skipped
    except CodatAPIError as exc:
        remove_staged(request.run_folder, token)
        if exc.status_code == 409:
            raise CodatDataNotSyncedError(not_synced_message(request.company_id, data_type.key)) from exc
        raise
    except WatermarkError as exc:
        remove_staged(request.run_folder, token)
        raise CodatExtractError(f"{label}: {exc}") from None
    except BaseException:
        remove_staged(request.run_folder, token)
        raise
    result.staged = list(writer.files)
    return result


def _scope_pages(hook: CodatHook, request: ExtractRequest, scope: ReadScope, cursor: Cursor):
    """The pages of one scope: by keyset for incremental types, every page in order for full types."""
    data_type = request.data_type
    if data_type.incremental:
        return iter_keyset_pages(
            hook,
            request.company_id,
            data_type,
            scope,
            cursor,
            include_deleted=request.include_deleted,
            page_size=request.page_size,
        )
    pages = partial(
        hook.iter_pages,
        request.company_id,
        data_type.key,
        query=build_query(data_type, None, request.include_deleted),
        page_size=request.page_size,
        connection_id=scope.connection_id,
        account_id=scope.account_id,
    )
    return read_whole(
        pages, f"{data_type.key} records of company {request.company_id} ({scope.key or 'company'})"
    )


def _codat_meta(request: ExtractRequest, scope: ReadScope, stamp: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"companyId": request.company_id, "dataType": request.data_type.key}
    if scope.connection_id:
        meta["connectionId"] = scope.connection_id
    if scope.account_id:
        meta["bankAccountId"] = scope.account_id
    meta["extractedAt"] = stamp
    return meta


def _summary(
    request: ExtractRequest, start: dict[str, Cursor], after: dict[str, Cursor], result: _Pass
) -> dict[str, Any]:
    return {
        "company_id": request.company_id,
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
