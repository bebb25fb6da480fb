"""Keep tables healthy: compact small files, cluster each month's rows by company, remove unreferenced files.

Every merge rewrites the files it touches and leaves the old ones for readers of older versions (time travel).
Once a month (the example monthly DAG's ``table_maintenance`` task) each table under the tables' folder is
z-ordered by ``_codat_company_id`` within each month (one company's rows then sit in few files, which readers
skip by their statistics; small files are merged on the way) and vacuumed: files no version newer than
``retention`` needs are deleted. A reader may then no longer travel back further than ``retention``.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from airflow.sdk import ObjectStoragePath
from deltalake import DeltaTable

from airflow_provider_codat.tables.commits import writer_properties
from airflow_provider_codat.tables.key import COMPANY
from airflow_provider_codat.tables.location import TOMBSTONES_FOLDER, delta_location

log = logging.getLogger(__name__)

DEFAULT_RETENTION = timedelta(days=7)


def table_folders(root: ObjectStoragePath) -> list[ObjectStoragePath]:
    """The Delta tables under ``root``: one per data type, and their tombstones."""
    if not root.exists():
        return []
    found = []
    for child in sorted(root.iterdir(), key=lambda path: path.name):
        if child.name == TOMBSTONES_FOLDER:
            found.extend(table_folders(child))
        elif (child / "_delta_log").exists():
            found.append(child)
    return found


def maintain_table(folder: ObjectStoragePath, *, retention: timedelta = DEFAULT_RETENTION) -> dict[str, Any]:
    """Cluster (z-order by company, which also compacts) and vacuum one table.

    :param folder: the table's folder.
    :param retention: how long files no longer in the table are kept for readers of older versions.
    """
    if retention < timedelta(0):
        raise ValueError(f"retention must not be negative, got {retention}.")
    uri, options = delta_location(folder)
    table = DeltaTable(uri, storage_options=options)
    clustered = COMPANY in table.schema().to_arrow().names  # tombstones are tiny: compacted only
    written = writer_properties()
    optimized = (
        table.optimize.z_order([COMPANY], writer_properties=written)
        if clustered
        else table.optimize.compact(writer_properties=written)
    )
    removed = table.vacuum(
        retention_hours=int(retention.total_seconds() // 3600),
        dry_run=False,
        enforce_retention_duration=False,  # the user's retention rules, not the table's default week
    )
    log.info(
        "%s: %s files added, %s removed by optimize; %d old files vacuumed",
        uri,
        optimized.get("numFilesAdded"),
        optimized.get("numFilesRemoved"),
        len(removed),
    )
    return {
        "table": uri,
        "version": table.version(),
        "files_added": optimized.get("numFilesAdded"),
        "files_removed": optimized.get("numFilesRemoved"),
        "vacuumed": len(removed),
    }


def maintain_tables(
    root: ObjectStoragePath, *, retention: timedelta = DEFAULT_RETENTION
) -> list[dict[str, Any]]:
    """:func:`maintain_table` for every table under ``root`` (the tables' folder)."""
    return [maintain_table(folder, retention=retention) for folder in table_folders(root)]
