"""Where extracts land: the destination resolved at run time (argument, Variable, default), its URI checked
before any request, and the path built from it."""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import unquote

from airflow.sdk import ObjectStoragePath

from airflow_provider_codat.errors import CodatValidationError
from airflow_provider_codat.safe_repr import shorten
from airflow_provider_codat.version_compat import object_storage_namespace

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# The Airflow Variable naming the destination when a run does not.
DESTINATION_VARIABLE = "codat_destination"


def default_destination() -> str:
    """Where data lands when neither the Params nor the ``codat_destination`` Variable say: a folder under
    ``AIRFLOW_HOME``. Called at run time only."""
    home = os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow")
    return "file://" + os.path.abspath(os.path.join(home, "codat-data"))


def _as_uri(destination: str) -> str:
    """Accept a plain local path as well as a storage URI."""
    destination = destination.strip()
    if destination.startswith("/"):
        return "file://" + destination
    return destination


def resolve_destination(explicit: str | None = None) -> str:
    """The destination URI a run writes to: ``explicit``, else the ``codat_destination`` Variable, else
    :func:`default_destination`. Call it in a task, never at parse time (it reads a Variable)."""
    if explicit:
        return _as_uri(str(explicit))
    from airflow.sdk import Variable

    return _as_uri(Variable.get(DESTINATION_VARIABLE, default=None) or default_destination())


def check_destination(destination: Any) -> str:
    """Check a destination URI's shape, and that no path segment climbs out of it.

    Only the text is checked (no connection is looked up), so this is safe at DAG parse time.

    :param destination: the URI given by the caller, e.g. ``file:///data/codat`` or ``s3://aws_default@bucket/codat``.
    :return: the URI unchanged.
    :raises CodatValidationError: not a URI, or it holds ``.``/``..`` segments (percent-encoded too) or a NUL byte.
    """
    if not isinstance(destination, str) or not _URI.match(destination):
        raise CodatValidationError(
            f"destination must be a storage URI such as 'file:///data/codat' or 's3://aws_default@bucket/codat', "
            f"got {shorten(destination)}."
        )
    path = destination.split("://", 1)[1]
    segments = unquote(path.split("?", 1)[0].split("#", 1)[0]).replace("\\", "/").split("/")
    if any(segment in (".", "..") for segment in segments) or "\x00" in path:
        raise CodatValidationError(
            f"destination must not contain '.' or '..' path segments (or a NUL byte), got {shorten(destination)}: "
            "write the folder out in full, e.g. 'file:///data/codat' instead of 'file:///data/x/../codat'."
        )
    return destination


def destination_path(destination: Any) -> ObjectStoragePath:
    """The storage path of a checked destination (an :class:`ObjectStoragePath` is taken as it is).

    :param destination: a URI (checked by :func:`check_destination`) or an ``ObjectStoragePath``.
    """
    if isinstance(destination, ObjectStoragePath):
        return destination
    return ObjectStoragePath(check_destination(destination).rstrip("/"))


def storage_dataset_name(path: ObjectStoragePath) -> tuple[str, str]:
    """The OpenLineage (namespace, name) of a storage location: ``("s3://bucket", "key")``, ``("file",
    "/abs/path")`` (OpenLineage's naming for object stores and local files).

    :param path: the location.
    """
    if path.protocol in ("file", "local"):
        return "file", "/" + path.key.lstrip("/")
    return object_storage_namespace(path), path.key
