"""The watermark of an incremental extract, and the exactly-once filter built on it.

A record *version* is the pair (``id``, ``modifiedDate``). A run asks Codat for ``modifiedDate>=W`` where ``W``
is the highest ``modifiedDate`` already written, so versions stamped exactly ``W`` come back again: the state
keeps the ids already written at ``W`` and the filter drops those, while a version stamped ``W`` that was not
written yet (it became visible after the previous read) goes through.

``modifiedDate`` values are compared as instants (``landing/records.py``). The watermark itself is kept as the
exact string Codat returned, and sent back as such in the next query.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from airflow_provider_codat.landing.records import CODAT_SHAPE, instant_key, record_identity, record_instant


def query_value(watermark: str) -> str:
    """The watermark as sent in ``modifiedDate>=...``: as Codat wrote it when it has Codat's shape, else the
    same instant in that shape (UTC, seven digits, rounded down so that the read includes it).

    :param watermark: a ``modifiedDate`` value.
    """
    fast = CODAT_SHAPE.match(watermark)
    if fast is not None and len(fast.group(1) or "") <= 7:
        return watermark
    return instant_key(watermark)[:27] + "Z"


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
