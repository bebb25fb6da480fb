"""A landed record's identity and instants, as every reader of the landing tells records and versions apart.

- **Identity**: a record's ``id``; a record without one (a few types, balances for instance) is identified by a
  digest of its content (``sha1:...``).
- **Version**: ``modifiedDate`` compared as an instant with every fractional digit Codat sends (seven), so two
  versions a tenth of a microsecond apart are two versions; :func:`instant_key` turns it into a string that
  sorts like the instant. Among versions of one instant, the later ``_codat.extractedAt`` wins.
- **Lineage**: ``_codat`` holds where a record came from (``companyId``, ``dataType``, ``connectionId`` and
  ``bankAccountId`` where scoped, ``extractedAt``); a version landed by a reconcile also carries
  ``reconciledAt``. ``metadata.isDeleted: true`` marks a deletion.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow_provider_codat.errors import WatermarkError
from airflow_provider_codat.safe_repr import shorten

# Where a reconcile says a version comes from it, not from Codat: ``_codat.reconciledAt``.
RECONCILED_AT = "reconciledAt"

_ISO = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?$"
)
# Codat's own shape ("2026-11-21T10:00:00.1234567Z"), turned into a key without parsing.
CODAT_SHAPE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.(\d{1,9}))?Z$")


def instant_key(value: str) -> str:
    """Return a string that sorts like the instant ``value`` names: UTC, nine fractional digits, ``Z``.

    A value without zone is read as UTC (some platforms send local times without one; Codat's own
    ``modifiedDate`` always carries ``Z``).

    :param value: an ISO 8601 date-time as found in ``modifiedDate``.
    :raises WatermarkError: when ``value`` is not a date-time.
    """
    fast = CODAT_SHAPE.match(value) if isinstance(value, str) else None
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


def modified_key(record: dict[str, Any]) -> str:
    """``modifiedDate`` as a string that sorts like the instant (nine fractional digits); ``""`` without one."""
    value = record.get("modifiedDate")
    return instant_key(value) if value else ""


def is_deleted(record: dict[str, Any]) -> bool:
    """The version says the record was deleted (``metadata.isDeleted``)."""
    metadata = record.get("metadata")
    return isinstance(metadata, dict) and metadata.get("isDeleted") is True


def scope_key(lineage: dict[str, Any]) -> str:
    """The scope a landed record was read in, from its ``_codat`` object: ``""`` for the company, a connection
    id, or ``connection/account`` for bank transactions (the extract's state keys its cursors the same way)."""
    connection, account = lineage.get("connectionId"), lineage.get("bankAccountId")
    if account:
        return f"{connection}/{account}"
    return str(connection or "")
