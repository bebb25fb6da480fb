"""The watermark of an incremental extract, and the exactly-once filter built on it.

A record *version* is the pair (``id``, ``modifiedDate``). A run asks Codat for ``modifiedDate>=W`` where ``W``
is the highest ``modifiedDate`` already written, so versions stamped exactly ``W`` come back again: the state
keeps the ids already written at ``W`` and the filter drops those, while a version stamped ``W`` that was not
written yet (it became visible after the previous read) goes through.

``modifiedDate`` values are compared as instants, with every fractional digit Codat sends (it sends seven), so
two versions a tenth of a microsecond apart are two versions. The watermark itself is kept as the exact string
Codat returned, and sent back as such in the next query.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow_provider_codat.errors import WatermarkError
from airflow_provider_codat.safe_repr import shorten

_ISO = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?$"
)
# The common shape ("2026-11-21T10:00:00.1234567Z") is turned into a key without parsing.
_FAST = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.(\d{1,9}))?Z$")


def instant_key(value: str) -> str:
    """Return a string that sorts like the instant ``value`` names: UTC, nine fractional digits, ``Z``.

    A value without zone is read as UTC (some platforms send local times without one; Codat's own
    ``modifiedDate`` always carries ``Z``).

    :param value: an ISO 8601 date-time as found in ``modifiedDate``.
    :raises WatermarkError: when ``value`` is not a date-time.
    """
    fast = _FAST.match(value) if isinstance(value, str) else None
    if fast is not None:
        try:
            datetime.fromisoformat(value[:19])  # the shape is right; is the date real (no 2026-02-30)?
        except ValueError as exc:
            raise WatermarkError(f"Not a valid date-time: {shorten(value)} ({exc}).") from None
        return value[:19] + "." + (fast.group(1) or "").ljust(9, "0") + "Z"
    match = _ISO.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise WatermarkError(f"Not an ISO 8601 date-time: {shorten(value)}.")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        moment = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second or 0), tzinfo=UTC
        )
        if zone and zone not in ("Z", "z"):
            sign = 1 if zone[0] == "+" else -1
            digits = zone[1:].replace(":", "").ljust(4, "0")
            moment -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:4]))
    except (ValueError, OverflowError) as exc:  # OverflowError: the offset moves it out of years 1-9999
        raise WatermarkError(f"Not a valid date-time: {shorten(value)} ({exc}).") from None
    fraction = (fraction or "")[:9].ljust(9, "0")
    # isoformat, unlike strftime("%Y"), always writes four-digit years, so keys keep sorting like instants.
    return moment.replace(tzinfo=None).isoformat(timespec="seconds") + "." + fraction + "Z"


def query_value(watermark: str) -> str:
    """The watermark as sent in ``modifiedDate>=...``: as Codat wrote it when it has Codat's shape, else the
    same instant in that shape (UTC, seven digits, rounded down so that the read includes it).

    :param watermark: a ``modifiedDate`` value.
    """
    fast = _FAST.match(watermark)
    if fast is not None and len(fast.group(1) or "") <= 7:
        return watermark
    return instant_key(watermark)[:27] + "Z"


def record_instant(record: dict[str, Any]) -> str:
    """The :func:`instant_key` of a record's ``modifiedDate``.

    :raises WatermarkError: naming the record, when ``modifiedDate`` is not a date-time.
    """
    try:
        return instant_key(record["modifiedDate"])
    except WatermarkError as exc:
        raise WatermarkError(
            f"Record {shorten(record.get('id'))} has a modifiedDate that is not a date-time ({exc}); nothing was "
            "committed. Report the record to Codat support (quote its id)."
        ) from None


def record_identity(record: dict[str, Any]) -> str:
    """The identity of a record within its data type: its ``id``, or a digest of its content when it has none.

    :param record: one record as Codat returned it.
    """
    ident = record.get("id")
    if ident is not None and ident != "":
        return str(ident)
    # A few types (balances, for instance) carry no id: the content then stands for the version.
    body = json.dumps(record, sort_keys=True, separators=(",", ":"), default=str).encode()
    return "sha1:" + hashlib.sha1(body, usedforsecurity=False).hexdigest()


@dataclass
class Cursor:
    """Where one scope (the company, a connection, or a bank account) stands.

    :param watermark: the highest ``modifiedDate`` written so far, exactly as Codat wrote it; ``None`` before
        the first run.
    :param ids_at_watermark: the ids of the versions already written whose ``modifiedDate`` is ``watermark``.
    """

    watermark: str | None = None
    ids_at_watermark: frozenset[str] = field(default_factory=frozenset)

    def to_json(self) -> dict[str, Any]:
        return {"watermark": self.watermark, "ids_at_watermark": sorted(self.ids_at_watermark)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Cursor:
        watermark = data.get("watermark")
        if watermark is not None:
            instant_key(watermark)  # a corrupt state file should fail here, not in a query
        return cls(watermark, frozenset(str(i) for i in data.get("ids_at_watermark") or ()))


class VersionFilter:
    """Decide, record by record, what a read writes, and where the watermark ends.

    Feed every record of the read to :meth:`accept` in any order; :meth:`result` then gives the new cursor.
    Memory holds only the ids at the current highest instant.

    :param start: the cursor the read started from (its query was ``modifiedDate>=start.watermark``).
    """

    def __init__(self, start: Cursor) -> None:
        self.start = start
        self._start_key = instant_key(start.watermark) if start.watermark else None
        self._max_key = self._start_key
        self._max_raw = start.watermark
        self._max_ids: set[str] = set(start.ids_at_watermark)
        self._last_raw: str | None = None
        self._last_key: str | None = None
        self.skipped = 0
        self.undated = 0
        self._undated_ids: set[str] = set()

    def accept(self, record: dict[str, Any]) -> bool:
        """Return whether ``record`` is a version not written yet, and track the watermark if so.

        A version met twice in one read (Codat documents no order among equal ``modifiedDate`` values, so
        pages can repeat a record) is accepted once.

        :param record: one record as Codat returned it.
        :raises WatermarkError: when ``modifiedDate`` is not a date-time (the message names the record).
        """
        raw = record.get("modifiedDate")
        if raw is None:
            # Without modifiedDate a record cannot be placed: write it once per read; it moves no watermark.
            ident = record_identity(record)
            if ident in self._undated_ids:
                self.skipped += 1
                return False
            self._undated_ids.add(ident)
            self.undated += 1
            return True
        if raw == self._last_raw:
            key = self._last_key
        else:
            key = record_instant(record)
            self._last_raw, self._last_key = raw, key
        start = self._start_key
        if start is not None and (
            key < start or (key == start and record_identity(record) in self.start.ids_at_watermark)
        ):
            # Older than the watermark (read by an earlier run), or this very version written at it.
            self.skipped += 1
            return False
        top = self._max_key
        if top is None or key > top:
            self._max_key, self._max_raw = key, raw
            self._max_ids = {record_identity(record)}
        elif key == top:
            ident = record_identity(record)
            if ident in self._max_ids:
                self.skipped += 1
                return False
            self._max_ids.add(ident)
        return True

    def top(self) -> tuple[str | None, str | None]:
        """The highest instant accepted or started from: ``(key, raw)``."""
        return self._max_key, self._max_raw

    def ids_at_top(self) -> set[str]:
        """The ids written, by this read or before it, at the highest instant."""
        return self._max_ids

    def result(self) -> Cursor:
        """The cursor after the read: the highest instant written and every id written at it."""
        return Cursor(self._max_raw, frozenset(self._max_ids))
