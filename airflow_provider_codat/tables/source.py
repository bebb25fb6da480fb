"""What a merge reads: the committed runs of a batch of companies, found by their manifests.

The landing stays the source of truth: a run counts once its ``run=.../_manifest.json`` exists (the extract's
commit), and its part files are the ones the manifest lists. A company whose run never committed (its sync
failed) is left out; it is merged by a later run's merge once it lands. A run's reconcile (its tombstones,
``extract/reconcile.py``) lands in a run folder of its own and is merged with the run.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec
from airflow.sdk import ObjectStoragePath

from airflow_provider_codat.extract.commit import read_manifest
from airflow_provider_codat.extract.layout import run_folder_name
from airflow_provider_codat.extract.reconcile import (
    RECONCILE_RUN_PREFIX,
    reconcilable_types,
    reconcile_run_id,
)

_READERS = 16  # manifests read at once: on object stores each is a request
_DECODER = msgspec.json.Decoder(float_hook=Decimal)


@dataclass(frozen=True)
class LandedRun:
    """One company's committed run of one data type.

    :param company_id: the company.
    :param run_folder: ``run=...``, the run's folder name.
    :param files: the URIs of its part files (none when nothing changed).
    """

    company_id: str
    run_folder: str
    files: tuple[str, ...]


def landed_runs(
    destination: ObjectStoragePath, data_type: str, company_ids: Sequence[str], run_id: str
) -> list[LandedRun]:
    """The committed runs ``run_id`` of ``data_type`` for ``company_ids`` (and their reconciles, for the types
    that have them), in the companies' order.

    :param destination: the landing's destination.
    :param data_type: the catalogue key.
    :param company_ids: the companies.
    :param run_id: the Airflow run id that landed them.
    """
    folders = [run_folder_name(run_id)]
    if reconcilable_types([data_type]) and not run_id.startswith(RECONCILE_RUN_PREFIX):
        folders.append(run_folder_name(reconcile_run_id(run_id)))

    def look(company_id: str) -> list[LandedRun]:
        found = []
        for folder in folders:
            manifest = read_manifest(destination / company_id / data_type / folder)
            if manifest is not None:
                files = tuple((manifest.get("summary") or {}).get("files") or ())
                found.append(LandedRun(company_id, folder, files))
        return found

    with ThreadPoolExecutor(max_workers=min(_READERS, max(1, len(company_ids)))) as pool:
        found = list(pool.map(look, company_ids))
    return [run for runs in found for run in runs]


def read_part_file(uri: str) -> bytes:
    """The JSON lines of one part file, uncompressed.

    :param uri: the file's URI, as a manifest lists it.
    """
    # One read of the compressed bytes: gzip reading through a storage file object goes in small pieces.
    return gzip.decompress(ObjectStoragePath(uri).read_bytes())


def decode_records(data: bytes) -> Iterator[dict[str, Any]]:
    """The records of JSON lines, decimals as :class:`~decimal.Decimal` (every digit kept).

    :param data: JSON lines.
    """
    try:
        yield from _DECODER.decode_lines(data)
    except (
        msgspec.DecodeError
    ):  # a lone surrogate escape, which msgspec refuses: the standard library reads it
        for line in data.splitlines():
            if line.strip():
                yield json.loads(line, parse_float=Decimal)
