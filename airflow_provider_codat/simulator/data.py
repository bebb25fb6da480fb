"""Seeded record generation: plausible Codat records for every catalogue data type.

Each collection draws from its own ``random.Random`` seeded by (seed, company, data type, scope ids), so a
record set does not depend on the order in which collections are first read. Records are plain dicts,
ready to serialize.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from airflow_provider_codat.datatypes import DataType, Kind
from airflow_provider_codat.simulator.builders import BUILDERS
from airflow_provider_codat.simulator.clock import fmt, fmt_local
from airflow_provider_codat.simulator.randomness import amount, collection_rng, company_name, integer, new_id

__all__ = ["collection_rng", "company_name", "make_record", "modify_record", "new_id"]


def make_record(
    data_type: DataType, rng: random.Random, written: datetime, *, synced_before: datetime
) -> dict:
    """One record of ``data_type``.

    :param data_type: the catalogue entry.
    :param rng: the collection's random source.
    :param written: the record's ``modifiedDate`` (when the simulated Codat wrote it).
    :param synced_before: business dates fall before this moment.
    """
    record: dict[str, Any] = {"id": new_id(rng)}
    record.update(BUILDERS[data_type.key](rng, synced_before))
    if data_type.kind is Kind.INCREMENTAL:
        record["modifiedDate"] = fmt(written)
        source = written - timedelta(minutes=integer(rng, 1, 600))
        # Some platforms return sourceModifiedDate without a zone; a few records have none at all (the
        # key is left out: Codat's docs call it nullable but the spec's property does not allow null).
        roll = rng.random()
        if roll >= 0.05:
            record["sourceModifiedDate"] = fmt_local(source) if roll < 0.3 else fmt(source)
    if data_type.has_deleted_flag:
        record["metadata"] = {"isDeleted": False}
    return record


def modify_record(data_type: DataType, record: dict, rng: random.Random, written: datetime) -> dict:
    """A changed copy of ``record`` as a sync would write it (the original dict is left alone).

    :param data_type: the catalogue key (e.g. ``invoices``).
    :param record: the record to copy.
    :param rng: the random source.
    :param written: the new ``modifiedDate``.
    """
    changed = dict(record)
    for key in ("totalAmount", "amount", "balance", "currentBalance", "amountDue"):
        if isinstance(changed.get(key), int | float):
            changed[key] = amount(rng)
            break
    else:
        changed["note"] = f"Changed {fmt(written)}"
    if data_type.kind is Kind.INCREMENTAL:
        changed["modifiedDate"] = fmt(written)
        changed["sourceModifiedDate"] = fmt(written - timedelta(seconds=integer(rng, 1, 3600)))
    return changed
