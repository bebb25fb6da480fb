"""One *pass* of an extract: read every scope and stream what the exactly-once filter keeps into staged files.

Incremental types are read by keyset on ``modifiedDate`` (``extract/keyset.py``), full types page by page,
snapshots as one object per scope. Every record kept gets the ``_codat`` metadata (plain ``str`` values: the
part writer's msgspec refuses ``str`` subclasses such as :class:`~airflow_provider_codat.values.CompanyId`).
A pass that fails removes what it staged; one that succeeds leaves its files staged for the commit
(``extract/run.py``).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from airflow_provider_codat.datatypes import Kind
from airflow_provider_codat.errors import (
    CodatAPIError,
    CodatDataNotSyncedError,
    CodatExtractError,
    WatermarkError,
)
from airflow_provider_codat.extract.commit import remove_staged
from airflow_provider_codat.extract.keyset import iter_keyset_pages, read_whole
from airflow_provider_codat.extract.plan import ReadScope, build_query, list_scopes
from airflow_provider_codat.extract.prefetch import Prefetcher
from airflow_provider_codat.extract.synced import not_synced_message
from airflow_provider_codat.extract.watermark import Cursor, VersionFilter
from airflow_provider_codat.extract.writer import PartWriter
from airflow_provider_codat.timestamps import format_timestamp

if TYPE_CHECKING:
    from collections.abc import Iterator
    from datetime import datetime

    from airflow.sdk import ObjectStoragePath

    from airflow_provider_codat.extract.request import ExtractRequest
    from airflow_provider_codat.hooks.codat import CodatHook

log = logging.getLogger(__name__)


@dataclass
class PassResult:
    """The outcome of one read of every scope.

    :param token: the staging token of the pass's files (what to remove when the pass is discarded).
    :param files: the URIs the staged files get once published (set by the commit).
    :param staged: the staged part files, in order.
    :param cursors: per scope key, where the next run starts (incremental types).
    """

    token: str = ""
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


class _Sink:
    """Where a pass puts what it keeps: the part writer, the pass's counts and the progress log."""

    def __init__(self, writer: PartWriter, result: PassResult, progress: _Progress) -> None:
        self.writer = writer
        self.result = result
        self.progress = progress

    def snapshot(self, report: dict[str, Any], meta: dict[str, Any]) -> None:
        """Write one snapshot object (one page, one record)."""
        report["_codat"] = meta
        self.writer.write([report])
        self.result.pages += 1
        self.result.records += 1

    def page(self, kept: list[dict[str, Any]], meta: dict[str, Any], skipped_in_scope: int) -> None:
        """Write the records kept from one page; count them, and the deleted ones among them."""
        result = self.result
        for record in kept:
            record["_codat"] = meta
            metadata = record.get("metadata")
            if metadata and metadata.get("isDeleted") is True:
                result.deleted += 1
        self.writer.write(kept)
        result.pages += 1
        result.records += len(kept)
        self.progress.page(result.pages, result.records, result.skipped + skipped_in_scope)


def read_pass(
    hook: CodatHook,
    request: ExtractRequest,
    start: dict[str, Cursor],
    extracted_at: datetime,
    label: str,
    token: str,
) -> PassResult:
    """Read every scope of ``request`` once into part files staged under ``token``.

    :param hook: the Codat hook.
    :param request: what to extract and where.
    :param start: the cursors the read starts from, per scope key.
    :param extracted_at: the ``_codat.extractedAt`` of every record.
    :param label: names the extract in log lines and errors.
    :param token: the staging token of this pass's files.
    :raises CodatDataNotSyncedError: Codat answered 409 (no completed sync) while reading.
    :raises CodatExtractError: a record's ``modifiedDate`` is not a date-time.
    """
    result = PassResult(token=token)
    progress = _Progress(label, request.log_interval)
    stamp = format_timestamp(extracted_at)
    writer = PartWriter(
        request.run_folder,
        max_bytes=request.max_file_bytes,
        max_records=request.max_file_records,
        compresslevel=request.compresslevel,
        token=token,
    )
    with _fewer_gc_passes(), _staged_removed_on_failure(request, label, token), writer:
        sink = _Sink(writer, result, progress)
        for scope in _scopes(hook, request, label):
            _read_scope(hook, request, scope, start, _codat_meta(request, scope, stamp), sink)
    result.staged = list(writer.files)
    return result


@contextlib.contextmanager
def _staged_removed_on_failure(request: ExtractRequest, label: str, token: str) -> Iterator[None]:
    """Remove the pass's staged files when it fails, and say what a 409 or a bad ``modifiedDate`` means."""
    try:
        yield
    except CodatAPIError as exc:
        remove_staged(request.run_folder, token)
        if exc.status_code == 409:
            raise CodatDataNotSyncedError(
                not_synced_message(request.company_id, request.data_type.key)
            ) from exc
        raise
    except WatermarkError as exc:
        remove_staged(request.run_folder, token)
        raise CodatExtractError(f"{label}: {exc}") from None
    except BaseException:
        remove_staged(request.run_folder, token)
        raise


def _scopes(hook: CodatHook, request: ExtractRequest, label: str) -> list[ReadScope]:
    scopes = list_scopes(hook, request.company_id, request.data_type, request.connection_id)
    if not scopes:
        log.warning(
            "%s: the company has no %s connection (or no bank account) to read this type from.",
            label,
            request.data_type.source_type,
        )
    return scopes


def _read_scope(
    hook: CodatHook,
    request: ExtractRequest,
    scope: ReadScope,
    start: dict[str, Cursor],
    meta: dict[str, Any],
    sink: _Sink,
) -> None:
    """Read one scope: a snapshot whole, a paged type through its version filter."""
    data_type = request.data_type
    if data_type.kind is Kind.SNAPSHOT:
        report = hook.get_report(
            request.company_id,
            data_type,
            connection_id=scope.connection_id,
            **request.report_params,
        )
        sink.snapshot(report, meta)
        return
    cursor = start.get(scope.key, Cursor())
    version_filter = VersionFilter(cursor)
    accept = version_filter.accept
    with Prefetcher(_scope_pages(hook, request, scope, cursor)) as prefetched:
        for page in prefetched:
            sink.page([record for record in page if accept(record)], meta, version_filter.skipped)
    if data_type.incremental:
        sink.result.cursors[scope.key] = version_filter.result()
    sink.result.skipped += version_filter.skipped


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
        data_type,
        query=build_query(data_type, None, request.include_deleted),
        page_size=request.page_size,
        connection_id=scope.connection_id,
        account_id=scope.account_id,
    )
    return read_whole(
        pages, f"{data_type.key} records of company {request.company_id} ({scope.key or 'company'})"
    )


def _codat_meta(request: ExtractRequest, scope: ReadScope, stamp: str) -> dict[str, Any]:
    """The ``_codat`` object of the scope's records, in plain ``str`` (the part writer refuses subclasses)."""
    meta: dict[str, Any] = {"companyId": str(request.company_id), "dataType": request.data_type.key}
    if scope.connection_id:
        meta["connectionId"] = str(scope.connection_id)
    if scope.account_id:
        meta["bankAccountId"] = str(scope.account_id)
    meta["extractedAt"] = stamp
    return meta


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
