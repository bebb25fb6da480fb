"""Gzip-compressed JSON-lines part files, written as pages arrive.

Each page is encoded to JSON lines on the caller's thread (msgspec, which Airflow already installs) and handed
to one background thread that compresses and writes it, so that compression overlaps the next page's request.
The hand-over queue is short, so memory stays at a few pages whatever the size of the extract. A file is closed
and the next one opened at a page boundary once it holds ``max_bytes`` of uncompressed JSON or
``max_records`` records.

Files are written under *staging* names (``.{token}.part-00000.jsonl.gz.tmp``): hidden, and matching neither
``part-*`` nor ``*.jsonl.gz``, so no reader can take an unfinished or uncommitted file for data. The commit
(``extract/commit.py``) gives them their final names.

Records are written as Codat sent them: decimals (decoded as :class:`~decimal.Decimal`) keep every digit, and a
string holding a lone UTF-16 surrogate, which UTF-8 cannot carry, is written back as the same ``\\uXXXX`` escape.
"""

from __future__ import annotations

import gzip
import json
import logging
import queue
import threading
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import msgspec

from airflow_provider_codat.landing.layout import staging_name

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_RECORDS = 1_000_000
DEFAULT_COMPRESSLEVEL = 3
_QUEUE_PAGES = 4
_CLOSE = object()


def encode_lines(encoder: msgspec.json.Encoder, records: list[dict[str, Any]]) -> bytes:
    """JSON lines for ``records``, exactly as Codat sent them.

    :param encoder: a msgspec encoder writing decimals as numbers.
    :param records: the records of one page.
    """
    try:
        return encoder.encode_lines(records)
    except UnicodeEncodeError:
        # A lone surrogate somewhere in the page: only those records take the slow path.
        lines = []
        for record in records:
            try:
                lines.append(encoder.encode(record))
            except UnicodeEncodeError:
                lines.append(_encode_escaped(record).encode("ascii"))
        return b"\n".join(lines) + b"\n"


def _encode_escaped(value: Any) -> str:
    """JSON text with non-ASCII characters escaped (so lone surrogates survive) and decimals as numbers."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{_encode_escaped(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_encode_escaped(v) for v in value) + "]"
    if isinstance(value, Decimal):
        return str(value)
    return json.dumps(value)


class PartWriter:
    """Write records into staged part files (``part-00000``, ``part-00001``, ...), rolling by size.

    Use as a context manager, or call :meth:`close` (success) or :meth:`abort` (failure) once.

    :param folder: the run folder (created if missing).
    :param max_bytes: roll to a new file once this many uncompressed bytes are in the current one.
    :param max_records: roll to a new file once this many records are in the current one.
    :param compresslevel: gzip level; 3 costs half the CPU of 6 for files about 15% bigger.
    :param token: the staging token: files are written as :func:`staging_name` ``(token, index)``.
    """

    def __init__(
        self,
        folder: ObjectStoragePath,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_records: int = DEFAULT_MAX_RECORDS,
        compresslevel: int = DEFAULT_COMPRESSLEVEL,
        token: str = "staging",
    ) -> None:
        if max_bytes < 1 or max_records < 1:
            raise ValueError("max_bytes and max_records must be positive.")
        self.folder = folder
        self.max_bytes = max_bytes
        self.max_records = max_records
        self.compresslevel = compresslevel
        self.token = token
        self.files: list[ObjectStoragePath] = []
        self.records = 0
        self.bytes = 0
        self._encoder = msgspec.json.Encoder(decimal_format="number")
        self._file_bytes = 0
        self._file_records = 0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=_QUEUE_PAGES)
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    # The caller's side.
    def write(self, records: Iterable[dict[str, Any]]) -> None:
        """Append records (one page, typically); nothing is written for an empty list.

        :param records: JSON-serialisable objects, written one a line in order.
        """
        records = records if isinstance(records, list) else list(records)
        if not records:
            return
        self._check()
        if self._thread is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._thread = threading.Thread(target=self._run, name="codat-part-writer", daemon=True)
            self._thread.start()
        roll = self._file_records > 0 and (
            self._file_bytes >= self.max_bytes or self._file_records >= self.max_records
        )
        if roll or not self.files:
            self.files.append(self.folder / staging_name(self.token, len(self.files)))
            self._file_bytes = self._file_records = 0
        data = encode_lines(self._encoder, records)
        self._file_bytes += len(data)
        self._file_records += len(records)
        self.bytes += len(data)
        self.records += len(records)
        self._put((self.files[-1], data))

    def close(self) -> list[ObjectStoragePath]:
        """Finish the last file and return every file written, in order.

        :raises: whatever the background writer met (a full disk, a refused upload...).
        """
        self._finish()
        self._check()
        return list(self.files)

    def abort(self) -> None:
        """Stop writing; files already started are left for the caller to remove."""
        try:
            self._finish()
        except BaseException:
            log.debug("Ignored an error while aborting the part writer", exc_info=True)

    def __enter__(self) -> PartWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _put(self, item: Any) -> None:
        self._offer(item, self._healthy)

    def _finish(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            if self._thread.is_alive():
                self._offer(_CLOSE, self._thread.is_alive)
            self._thread.join()

    def _offer(self, item: Any, keep_trying: Callable[[], bool]) -> None:
        """Queue ``item``, waiting in short steps while ``keep_trying()`` holds (it may raise instead).

        Short steps, so that a writer thread that failed or stopped cannot leave the caller blocked forever.
        """
        while keep_trying():
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def _healthy(self) -> bool:
        self._check()
        return True

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    # The background thread.
    def _run(self) -> None:
        current: ObjectStoragePath | None = None
        raw = gz = None
        try:
            while True:
                item = self._queue.get()
                if item is _CLOSE:
                    break
                path, data = item
                if path is not current:
                    if gz is not None:
                        gz.close()
                        raw.close()
                    raw = path.open("wb")
                    # mtime=0 and no file name: the same records give the same bytes.
                    gz = gzip.GzipFile(
                        filename="", mode="wb", fileobj=raw, compresslevel=self.compresslevel, mtime=0
                    )
                    current = path
                gz.write(data)
            if gz is not None:
                gz.close()
                raw.close()
        except BaseException as exc:
            self._error = exc
            # Drain so that a caller blocked on a full queue wakes up and sees the error.
            while True:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break
            for handle in (gz, raw):
                try:
                    if handle is not None:
                        handle.close()
                except Exception:
                    log.debug("Ignored an error closing a part file after a failure", exc_info=True)
