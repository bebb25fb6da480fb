"""What identifies a row of a table, which version of it wins, and where its file lives.

- **Key**: the company, the connection (connection-scoped types), the bank account (bank transactions) and the
  record's ``id`` (a digest of its content when it has none, as in the landing; a snapshot type such as
  ``balanceSheet`` has one row per company or connection). ``_codat_key`` spells it out; ``_codat_key_hash``
  is a 64-bit digest of it, cheap to read back when finding where existing rows live.
- **Version**: ``modifiedDate`` (every fractional digit, as :func:`~airflow_provider_codat.landing.records.
  instant_key` sorts it: ``_codat_modified``), then the extraction time. A version replaces a row only when it
  is newer, so merging a run again, or an older run late, never overwrites a newer row.
- **Month**: ``_codat_month``, the month the record first landed (``YYYY-MM`` of its first ``extractedAt``),
  the partition column. It never changes for a record, and recent changes share recent months.
- **Looking up by key**: :func:`looked_up` joins a small table's columns to rows in the rows' own order (Arrow's
  joins do not keep the order of their rows).
"""

from __future__ import annotations

import hashlib
from typing import Any

import pyarrow as pa

from airflow_provider_codat.landing.records import record_identity

COMPANY = "_codat_company_id"
CONNECTION = "_codat_connection_id"
BANK_ACCOUNT = "_codat_bank_account_id"
EXTRACTED_AT = "_codat_extracted_at"
RUN = "_codat_run"
DELETED = "_codat_deleted"
MODIFIED = "_codat_modified"
KEY = "_codat_key"
KEY_HASH = "_codat_key_hash"
MONTH = "_codat_month"
LINEAGE_COLUMNS = (
    COMPANY,
    CONNECTION,
    BANK_ACCOUNT,
    EXTRACTED_AT,
    RUN,
    DELETED,
    MODIFIED,
    KEY,
    KEY_HASH,
    MONTH,
)


def record_key(lineage: dict[str, Any], record: dict[str, Any], *, snapshot: bool) -> str:
    """``company/connection/account/id`` of a landed record (empty parts where the type has no such scope).

    :param lineage: the record's ``_codat`` object.
    :param record: the record without ``_codat``.
    :param snapshot: a snapshot type (one row per scope, whatever its content).
    """
    ident = "" if snapshot else record_identity(record)
    parts = (lineage.get("companyId"), lineage.get("connectionId"), lineage.get("bankAccountId"), ident)
    return "/".join(str(part or "") for part in parts)


def key_hash(key: str) -> int:
    """A signed 64-bit digest of a key (for finding rows; the merge itself compares whole keys)."""
    return _digest(key.encode())


def key_hashes(keys: pa.Array) -> pa.Array:
    """:func:`key_hash` of every key of a string array (the same digests, without a call per key)."""
    return pa.array([_digest(key) for key in keys.cast(pa.binary()).to_pylist()], pa.int64())


def _digest(key: bytes) -> int:
    # Stored in every table: changing it would misplace rows already written.
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big", signed=True)


def month_of(extracted_at: str) -> str:
    """``YYYY-MM`` of an ``extractedAt`` (``2026-11-21T10:05:00.000000Z`` -> ``2026-11``)."""
    return extracted_at[:7]


_ROW = "_row"


def looked_up(rows: pa.Table, found: pa.Table, key: str) -> pa.Table:
    """``rows`` with ``found``'s other columns beside each row (null where its key is not in ``found``), in the
    order of ``rows``; ``found`` holds each key once.

    :param rows: the rows to look up, with the column ``key``.
    :param found: the table looked in, with the column ``key``.
    :param key: the column both share.
    """
    numbered = rows.append_column(_ROW, pa.array(range(rows.num_rows), pa.int64()))
    return numbered.join(found, key, join_type="left outer").sort_by(_ROW).drop_columns([_ROW])
