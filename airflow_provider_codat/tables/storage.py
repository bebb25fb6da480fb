"""Where a table lives: ``{destination}/_tables/{data_type}`` by default, through the landing's storage.

delta-rs opens tables by URI with its own storage options, so an ``ObjectStoragePath`` is turned into both: a
local path for ``file://``; for object stores (``s3://``, ``gs://``, ``abfs://``) the bucket's URI and the
credentials of the Airflow connection the path names (:mod:`.credentials`).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import ObjectStoragePath

from airflow_provider_codat.landing.destination import destination_path
from airflow_provider_codat.tables.credentials import delta_options
from airflow_provider_codat.version_compat import object_storage_conn_id

TABLES_FOLDER = "_tables"
TOMBSTONES_FOLDER = "_deleted"  # not a data type key: no table can take its name
COMPANIES_FOLDER = "_companies"  # in TOMBSTONES_FOLDER: the companies deleted at Codat (.deleted_companies)


def tables_root(destination: Any, tables: Any = None) -> ObjectStoragePath:
    """The folder holding one table per data type: ``tables`` when given, else ``{destination}/_tables``.

    :param destination: the landing's destination (URI or ``ObjectStoragePath``).
    :param tables: another folder for the tables (URI or ``ObjectStoragePath``), or ``None``.
    """
    if tables:
        return destination_path(tables)
    return destination_path(destination) / TABLES_FOLDER


def delta_location(path: ObjectStoragePath) -> tuple[str, dict[str, str]]:
    """``(uri, storage_options)`` for delta-rs.

    :param path: a table's folder.
    """
    protocol = path.protocol if isinstance(path.protocol, str) else path.protocol[0]
    if protocol in ("file", "local"):
        return "/" + path.path.lstrip("/"), {}
    options = delta_options(protocol, object_storage_conn_id(path))
    bucket_and_key = path.path.lstrip("/")
    return f"{protocol}://{bucket_and_key}", options
