"""Where a table lives: ``{destination}/_tables/{data_type}`` by default, through the landing's storage.

delta-rs opens tables by URI with its own storage options, so an ``ObjectStoragePath`` is turned into both: a
local path for ``file://``, and for ``s3://`` the credentials of the Airflow connection the path names (the
keys delta-rs reads: ``AWS_ACCESS_KEY_ID``...). Other stores (``gs://``, ``abfs://``) pass their URI and let
delta-rs read credentials from the environment (``GOOGLE_APPLICATION_CREDENTIALS``, ``AZURE_STORAGE_*``).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import ObjectStoragePath

from airflow_provider_codat.extract.destination import destination_path

TABLES_FOLDER = "_tables"
TOMBSTONES_FOLDER = "_deleted"  # not a data type key: no table can take its name
COMPANIES_FOLDER = "_companies"  # in TOMBSTONES_FOLDER: the companies deleted at Codat (.deleted_companies)
# s3fs option -> delta-rs storage option.
_S3_OPTIONS = {
    "key": "AWS_ACCESS_KEY_ID",
    "secret": "AWS_SECRET_ACCESS_KEY",
    "token": "AWS_SESSION_TOKEN",
    "endpoint_url": "AWS_ENDPOINT_URL",
    "region_name": "AWS_REGION",
}


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
    options: dict[str, str] = {}
    if protocol in ("s3", "s3a"):
        options = s3_options(getattr(path.fs, "storage_options", None) or {})
    bucket_and_key = path.path.lstrip("/")
    return f"{protocol}://{bucket_and_key}", options


def s3_options(fs_options: dict[str, Any]) -> dict[str, str]:
    """delta-rs's S3 options from an s3fs filesystem's (as the Amazon provider builds it from the connection).

    :param fs_options: ``key``, ``secret``, ``token``, ``client_kwargs`` (``endpoint_url``, ``region_name``).
    """
    flat = {k: v for k, v in fs_options.items() if k != "client_kwargs"}
    flat.update(fs_options.get("client_kwargs") or {})
    return {_S3_OPTIONS[k]: str(v) for k, v in flat.items() if k in _S3_OPTIONS and v}
