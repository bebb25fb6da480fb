"""What the landing holds now for one company and data type: the newest landed version of each record.

The reconcile (``extract/reconcile.py``) compares it with what Codat holds. Only committed runs count (those
with a manifest; ``landing/manifest.py``), and of their records the newest version of each wins, in the order
the current-state tables use (``tables/key.py``): ``modifiedDate``, then the extraction time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_codat.landing.manifest import committed_files
from airflow_provider_codat.landing.parts import decode_records, read_part_file
from airflow_provider_codat.landing.records import RECONCILED_AT, is_deleted, modified_key, scope_key

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath


@dataclass
class LandedVersion:
    """The newest landed version of one record.

    :param record: the record as landed, ``_codat`` included.
    :param order: what makes it the newest: ``(modifiedDate as an instant key, extractedAt)``.
    """

    record: dict[str, Any]
    order: tuple[str, str]

    @property
    def deleted(self) -> bool:
        return is_deleted(self.record)

    @property
    def reconciled(self) -> bool:
        """Landed by a reconcile (a tombstone, or a record that came back), not read from Codat's changes."""
        return RECONCILED_AT in (self.record.get("_codat") or {})


def current_versions(type_folder: ObjectStoragePath) -> dict[str, dict[str, LandedVersion]]:
    """Per scope key, per record ``id``, the newest committed version in ``type_folder``.

    Records without an ``id`` are left out: a version of one cannot be told from another record.

    :param type_folder: ``{destination}/{company_id}/{data_type}``.
    """
    found: dict[str, dict[str, LandedVersion]] = {}
    for uri in committed_files(type_folder):
        for record in decode_records(read_part_file(uri)):
            ident = record.get("id")
            if ident is None or ident == "":
                continue
            lineage = record.get("_codat") or {}
            order = (modified_key(record), str(lineage.get("extractedAt") or ""))
            scope = found.setdefault(scope_key(lineage), {})
            known = scope.get(str(ident))
            if known is None or order >= known.order:
                scope[str(ident)] = LandedVersion(record, order)
    return found
