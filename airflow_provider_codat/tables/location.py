"""Where a table lives, and how delta-rs reaches it.

**Where**: ``{destination}/_tables/{data_type}`` by default, through the landing's storage. delta-rs opens
tables by URI with its own storage options, so an ``ObjectStoragePath`` is turned into both: a local path for
``file://``; for object stores (``s3://``, ``gs://``, ``abfs://``) the bucket's URI and the credentials of the
Airflow connection the path names.

**Credentials**: delta-rs's storage options come from the Airflow connection a table's path names
(``s3://conn_id@bucket/...``), so that the tables are written with the credentials the landing is written with.

- **S3**: resolved by the Amazon provider's hook, as the landing's S3 filesystem resolves them (keys, a role
  assumed, a profile), plus the connection's region and endpoint.
- **Google Cloud Storage** (``gs://``): the connection's service-account key, as a file (``key_path``) or inline
  (``keyfile_dict``).
- **Azure** (``abfs://``, ``abfss://``, ``az://``; connection types ``wasb``, ``adls``, ``azure_data_lake``):
  read as the Azure provider's filesystem reads them: a connection string; else the account (host or login)
  with its key (password), or a service principal (login, password and ``tenant_id``), a SAS token, a managed
  or workload identity, anonymous access.

Without a connection, no options: delta-rs then looks in the environment (``AWS_*``,
``GOOGLE_APPLICATION_CREDENTIALS``, ``AZURE_STORAGE_*``) and at the machine's identity, as the landing's
filesystems do. What delta-rs cannot take (a Google key held in Secret Manager, an impersonation chain, a
workload identity federation file) fails before any write, naming the field. The options hold secrets: they go
to delta-rs only, never to a log or an exception.
"""

from __future__ import annotations

import json
from typing import Any

from airflow.sdk import BaseHook, ObjectStoragePath

from airflow_provider_codat.errors import CodatValidationError
from airflow_provider_codat.landing.destination import destination_path
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


# --- credentials ---------------------------------------------------------------------------------------------

GOOGLE_PROTOCOLS = ("gs", "gcs")
AZURE_PROTOCOLS = ("abfs", "abfss", "az")
_UNSUPPORTED_GOOGLE = ("key_secret_name", "impersonation_chain", "credential_config_file")


def delta_options(protocol: str, conn_id: str | None) -> dict[str, str]:
    """The storage options for a table on ``protocol`` through the connection ``conn_id`` (``None``: none).

    :param protocol: the path's scheme (``s3``, ``gs``, ``abfs``...).
    :param conn_id: the connection the path names, or ``None``.
    :raises CodatValidationError: a connection whose credentials delta-rs cannot take.
    """
    if not conn_id:
        return {}
    if protocol in ("s3", "s3a"):
        return s3_options(conn_id)
    if protocol in GOOGLE_PROTOCOLS:
        return google_options(conn_id)
    if protocol in AZURE_PROTOCOLS:
        return azure_options(conn_id)
    return {}


def s3_options(conn_id: str | None) -> dict[str, str]:
    """delta-rs's S3 options (``AWS_ACCESS_KEY_ID``...) from the Airflow AWS connection ``conn_id``.

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


def google_options(conn_id: str) -> dict[str, str]:
    """delta-rs's GCS options from the Google Cloud connection ``conn_id``.

    :param conn_id: the connection a ``gs://conn_id@bucket/...`` path names.
    :raises CodatValidationError: the connection authenticates in a way delta-rs cannot.
    """
    connection = BaseHook.get_connection(conn_id)

    def field(name: str) -> Any:
        return _extra(connection.extra_dejson, "google_cloud_platform", name)

    for name in _UNSUPPORTED_GOOGLE:
        if field(name):
            raise CodatValidationError(
                f"The connection {conn_id!r} sets {name!r}, which delta-rs cannot use to write the tables. "
                "Give it a service-account key ('key_path' or 'keyfile_dict'), or leave both out for the "
                "machine's identity (Application Default Credentials), or pass tables= a path through "
                "another connection."
            )
    keyfile = field("keyfile_dict")
    if keyfile:
        return {"google_service_account_key": keyfile if isinstance(keyfile, str) else json.dumps(keyfile)}
    key_path = field("key_path")
    if key_path:
        return {"google_service_account_path": str(key_path)}
    return {}


def azure_options(conn_id: str) -> dict[str, str]:
    """delta-rs's Azure options from the Azure Blob / Data Lake connection ``conn_id``.

    :param conn_id: the connection an ``abfs://conn_id@container/...`` path names.
    """
    connection = BaseHook.get_connection(conn_id)
    conn_type = connection.conn_type or "azure_data_lake"

    def field(name: str) -> Any:
        return _extra(connection.extra_dejson, conn_type, name)

    connection_string = field("connection_string")
    if connection_string:
        return _from_connection_string(connection_string)
    found: dict[str, Any] = {"account_name": _account_name(conn_type, connection.host, connection.login)}
    tenant_id = field("tenant_id")
    if tenant_id:  # a service principal: login and password are its id and secret
        found |= {"client_id": connection.login, "client_secret": connection.password}
    else:
        found["account_key"] = connection.password
    for name in ("account_name", "account_key", "sas_token", "tenant_id", "account_host", "anon"):
        value = field(name)
        if value == "":  # an empty extra removes what the login or password gave
            found.pop(name, None)
        elif value is not None:
            found[name] = value
    found["client_id"] = (
        field("managed_identity_client_id") or field("workload_identity_client_id") or found.get("client_id")
    )
    found["tenant_id"] = found.get("tenant_id") or field("workload_identity_tenant_id")
    return _azure_keys(found)


def _extra(extras: dict[str, Any], conn_type: str, name: str) -> Any:
    """An extra by its name, or by the ``extra__{conn_type}__`` name older connections saved it under."""
    return extras[name] if name in extras else extras.get(f"extra__{conn_type}__{name}")


def _account_name(conn_type: str, host: str | None, login: str | None) -> str | None:
    """The storage account: the first label of a host such as ``acct.blob.core.windows.net``, else the login."""
    label = (host or "").split("://", 1)[-1].split("/", 1)[0].split(".", 1)[0] or None
    if conn_type == "adls":
        return label or login
    return label if label and "." in (host or "") else login or label


def _from_connection_string(connection_string: str) -> dict[str, str]:
    parts = dict(
        part.split("=", 1) for part in connection_string.split(";") if "=" in part
    )  # AccountName=...;AccountKey=...;BlobEndpoint=...
    found = {
        "account_name": parts.get("AccountName"),
        "account_key": parts.get("AccountKey"),
        "sas_token": parts.get("SharedAccessSignature"),
        "endpoint": parts.get("BlobEndpoint"),
    }
    return _azure_keys(found)


def _azure_keys(found: dict[str, Any]) -> dict[str, str]:
    """delta-rs's names for adlfs's."""
    names = {
        "account_name": "azure_storage_account_name",
        "account_key": "azure_storage_account_key",
        "sas_token": "azure_storage_sas_token",
        "client_id": "azure_storage_client_id",
        "client_secret": "azure_storage_client_secret",
        "tenant_id": "azure_storage_tenant_id",
        "endpoint": "azure_storage_endpoint",
    }
    options = {names[name]: str(value) for name, value in found.items() if name in names and value}
    if found.get("account_host"):
        host = str(found["account_host"])
        options["azure_storage_endpoint"] = host if "://" in host else f"https://{host}"
    if str(found.get("anon", "")).lower() in ("true", "1"):
        options["azure_skip_signature"] = "true"
    if options.get("azure_storage_endpoint", "").startswith("http://"):
        options["azure_allow_http"] = "true"  # Azurite or a private endpoint on a private network
    return options
