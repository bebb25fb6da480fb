"""A run's manifest (``run=.../_manifest.json``): the proof that the run committed, and the list of its files.

A reader takes a run's part files from its manifest, never from a listing of the folder: a run folder without a
manifest holds nothing committed, and only the files the manifest lists are data. The manifest is
``{"run_id": ..., "summary": {"files": [uri, ...], "records": ..., ...}}``.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import TYPE_CHECKING, Any

from airflow_provider_codat.landing.layout import MANIFEST, RUN_FOLDER_PREFIX

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

log = logging.getLogger(__name__)


def read_manifest(run_folder: ObjectStoragePath) -> dict[str, Any] | None:
    """The manifest of a committed run, or ``None`` when the run never committed.

    :param run_folder: the run's folder, ``.../run=...``.
    """
    path = run_folder / MANIFEST
    if not path.exists():
        return None
    return json.loads(path.read_text())


def write_manifest(run_folder: ObjectStoragePath, run_id: str | None, summary: dict[str, Any] | None) -> None:
    """Write a run's manifest, whole or not at all.

    :param run_folder: the run's folder (created if missing).
    :param run_id: the Airflow run id.
    :param summary: what the run returned; its ``files`` are the run's part files.
    """
    run_folder.mkdir(parents=True, exist_ok=True)
    manifest = {"run_id": run_id, "summary": summary}
    replace_file(run_folder / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode())


def listed_files(manifest: dict[str, Any]) -> tuple[str, ...]:
    """The URIs of the part files a manifest lists (none when the run landed nothing).

    :param manifest: a manifest as :func:`read_manifest` returns it.
    """
    return tuple((manifest.get("summary") or {}).get("files") or ())


def committed_files(type_folder: ObjectStoragePath) -> list[str]:
    """The part files of every committed run of one company's data type, run folders in name order.

    :param type_folder: ``{destination}/{company_id}/{data_type}``.
    """
    if not type_folder.exists():
        return []
    files: list[str] = []
    for folder in sorted(type_folder.iterdir(), key=lambda path: path.name):
        if not folder.name.startswith(RUN_FOLDER_PREFIX):
            continue
        manifest = read_manifest(folder)
        if manifest is not None:
            files.extend(listed_files(manifest))
    return files


def replace_file(target: ObjectStoragePath, body: bytes) -> None:
    """Write ``body`` to ``target`` through a temporary name, so that no reader sees half of it.

    :param target: the file to write or replace.
    :param body: its whole content.
    """
    temp = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
    temp.write_bytes(body)
    try:
        temp.fs.mv(temp.path, target.path)
    except Exception:
        try:
            temp.unlink()
        except Exception:
            log.warning("Could not remove the temporary file %s", temp)
        raise
