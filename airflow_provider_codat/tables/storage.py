"""Where a table lives: ``{destination}/_tables/{data_type}`` by default, through the landing's storage.

delta-rs opens tables by URI with its own storage options, so an ``ObjectStoragePath`` is turned into both: a
local path for ``file://``, and for ``s3://`` the credentials, endpoint and region of the Airflow AWS connection
the path names, resolved by the Amazon provider's hook as the landing's own S3 filesystem resolves them (keys, a
role assumed, a profile). Other stores (``gs://``, ``abfs://``) pass their URI and let delta-rs read credentials
from the environment (``GOOGLE_APPLICATION_CREDENTIALS``, ``AZURE_STORAGE_*``).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import ObjectStoragePath

from airflow_provider_codat.errors import CodatValidationError
from airflow_provider_codat.extract.destination import destination_path
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
    options = s3_options(object_storage_conn_id(path)) if protocol in ("s3", "s3a") else {}
    bucket_and_key = path.path.lstrip("/")
    return f"{protocol}://{bucket_and_key}", options


def s3_options(conn_id: str | None) -> dict[str, str]:
    """delta-rs's S3 options (``AWS_ACCESS_KEY_ID``...) from the Airflow AWS connection ``conn_id``.

    Without a connection, none: delta-rs then looks where boto3 would (the environment, a profile, the
    instance's role), as the landing's filesystem does.

    :param conn_id: the connection an ``s3://conn_id@bucket/...`` path names, or ``None``.
    :raises CodatValidationError: the Amazon provider is not installed.
    """
    if not conn_id:
        return {}
    try:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    except ImportError:
        raise CodatValidationError(
            f"Tables on s3:// with the connection {conn_id!r} need the Amazon provider: pip install "
            "'airflow-provider-codat[s3]' (or apache-airflow-providers-amazon[s3fs])."
        ) from None
    hook = S3Hook(aws_conn_id=conn_id)
    credentials = hook.get_credentials()
    found = {
        "AWS_ACCESS_KEY_ID": credentials.access_key,
        "AWS_SECRET_ACCESS_KEY": credentials.secret_key,
        "AWS_SESSION_TOKEN": credentials.token,
        "AWS_REGION": hook.conn_region_name,
        "AWS_ENDPOINT_URL": hook.conn_config.get_service_endpoint_url(service_name="s3"),
    }
    options = {name: str(value) for name, value in found.items() if value}
    if options.get("AWS_ENDPOINT_URL", "").startswith("http://"):
        options["AWS_ALLOW_HTTP"] = "true"  # an S3-compatible store on a private network (MinIO...)
    return options
