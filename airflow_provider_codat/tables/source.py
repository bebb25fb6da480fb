"""What a merge reads: the committed runs of a batch of companies, found by their manifests.

The landing stays the source of truth: a run counts once its ``run=.../_manifest.json`` exists (the extract's
commit), and its part files are the ones the manifest lists. A company whose run never committed (its sync
failed) is left out; it is merged by a later run's merge once it lands. A run's reconcile (its tombstones,
``landing/layout.py``) lands in a run folder of its own and is merged with the run.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from airflow_provider_codat.landing.layout import run_folders
from airflow_provider_codat.landing.manifest import listed_files, read_manifest

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

_READERS = 16  # manifests read at once: on object stores each is a request


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
    folders = run_folders(data_type, run_id)

    def look(company_id: str) -> list[LandedRun]:
        found = []
        for folder in folders:
            manifest = read_manifest(destination / company_id / data_type / folder)
            if manifest is not None:
                found.append(LandedRun(company_id, folder, listed_files(manifest)))
        return found

    with ThreadPoolExecutor(max_workers=min(_READERS, max(1, len(company_ids)))) as pool:
        found = list(pool.map(look, company_ids))
    return [run for runs in found for run in runs]
