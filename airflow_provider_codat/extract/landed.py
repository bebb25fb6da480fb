"""What the landing holds now for one company and data type: the newest landed version of each record.

The reconcile (``extract/reconcile.py``) compares it with what Codat holds. Only committed runs count (those
with a manifest; ``extract/commit.py``), and of their records the newest version of each wins, in the order
the current-state tables use (``tables/key.py``): ``modifiedDate``, then the extraction time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_codat.extract.commit import read_manifest
from airflow_provider_codat.extract.watermark import instant_key
from airflow_provider_codat.landing.layout import RUN_FOLDER_PREFIX
from airflow_provider_codat.landing.parts import decode_records, read_part_file

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

# Where a reconcile says a version comes from it, not from Codat: ``_codat.reconciledAt``.
RECONCILED_AT = "reconciledAt"


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
        metadata = self.record.get("metadata")
        return isinstance(metadata, dict) and metadata.get("isDeleted") is True

    @property
    def reconciled(self) -> bool:
        """Landed by a reconcile (a tombstone, or a record that came back), not read from Codat's changes."""
        return RECONCILED_AT in (self.record.get("_codat") or {})


def scope_key(lineage: dict[str, Any]) -> str:
    """The state's scope key of a landed record (``""``, a connection, or ``connection/account``)."""
    connection, account = lineage.get("connectionId"), lineage.get("bankAccountId")
    if account:
        return f"{connection}/{account}"
    return str(connection or "")


def current_versions(type_folder: ObjectStoragePath) -> dict[str, dict[str, LandedVersion]]:
    """Per scope key, per record ``id``, the newest committed version in ``type_folder``.

    Records without an ``id`` are left out: a version of one cannot be told from another record.

    :param type_folder: ``{destination}/{company_id}/{data_type}``.
    """
    found: dict[str, dict[str, LandedVersion]] = {}
    for uri in _committed_files(type_folder):
        for record in decode_records(read_part_file(uri)):
            ident = record.get("id")
            if ident is None or ident == "":
                continue
            lineage = record.get("_codat") or {}
            modified = record.get("modifiedDate")
            order = (instant_key(modified) if modified else "", str(lineage.get("extractedAt") or ""))
            scope = found.setdefault(scope_key(lineage), {})
            known = scope.get(str(ident))
            if known is None or order >= known.order:
                scope[str(ident)] = LandedVersion(record, order)
    return found


def _committed_files(type_folder: ObjectStoragePath) -> list[str]:
    """The part files of every committed run in ``type_folder``, as their manifests list them."""
    if not type_folder.exists():
        return []
    files: list[str] = []
    for folder in sorted(type_folder.iterdir(), key=lambda path: path.name):
        if not folder.name.startswith(RUN_FOLDER_PREFIX):
            continue
        manifest = read_manifest(folder)
        if manifest is not None:
            files.extend((manifest.get("summary") or {}).get("files") or ())
    return files
