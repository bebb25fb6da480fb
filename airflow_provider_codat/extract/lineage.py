"""OpenLineage for the extract: what it read from Codat and where it landed it.

``CodatExtractOperator.get_openlineage_facets_on_complete`` hands over to :func:`extract_lineage`, which the
OpenLineage provider calls once the task succeeded. It needs ``apache-airflow-providers-openlineage`` (the
``openlineage`` extra: ``pip install 'airflow-provider-codat[openlineage]'``); this module is imported only
then, so the provider works without it.

- **Input**: one dataset per company and data type, namespace ``codat://{API host}`` (``codat://api.codat.io``),
  name ``{company_id}/{data_type}``, with a schema facet listing the record fields Codat's OpenAPI spec gives
  for the type (shipped as a small field list, ``lineage_fields.json``; no facet for a type the spec lacks).
- **Output**: the landed folder ``{destination}/{company_id}/{data_type}``, named as its ObjectStoragePath
  says (``s3://bucket`` + key, ``file`` + absolute path), with the same schema plus ``_codat``, and the
  run's output statistics: records written, part files and their bytes.

Figures come from the run's manifest (``run=.../_manifest.json``): the landing's own record of the run.
"""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow.sdk import ObjectStoragePath

from airflow_provider_codat.landing.destination import storage_dataset_name

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage

    from airflow_provider_codat.hooks.codat import CodatHook


log = logging.getLogger(__name__)

FIELDS_FILE = Path(__file__).with_name("lineage_fields.json")
# What the extract adds to every record it lands.
_CODAT_FIELD = (
    "_codat",
    "object",
    "companyId, dataType, connectionId/bankAccountId where scoped, extractedAt",
)


@functools.cache
def record_fields() -> dict[str, list[list[str]]]:
    """``{data_type: [[field, json type], ...]}`` from Codat's OpenAPI spec (the packaged list)."""
    return json.loads(FIELDS_FILE.read_text())


def codat_dataset_name(base_url: str, company_id: str, data_type: str) -> tuple[str, str]:
    """The OpenLineage (namespace, name) of one company's data type in the Codat API at ``base_url``.

    :param base_url: the API's base URL (``https://api.codat.io``).
    :param company_id: the company.
    :param data_type: the catalogue key.
    """
    return f"codat://{urlsplit(base_url).netloc}", f"{company_id}/{data_type}"


def extract_lineage(
    *, hook: CodatHook, company_id: str, data_type: str, destination: Any, task_instance: Any
) -> OperatorLineage:
    """The lineage of one finished extract run (its templated fields rendered).

    :param hook: the extract's hook (its base URL names the source).
    :param company_id: the company read.
    :param data_type: the data type read.
    :param destination: where the extract landed it (a storage URI or ``ObjectStoragePath``).
    :param task_instance: the finished task instance (its ``run_id`` finds the run's manifest).
    """
    from airflow.providers.common.compat.openlineage.facet import (
        Dataset,
        OutputDataset,
        OutputStatisticsOutputDatasetFacet,
    )
    from airflow.providers.openlineage.extractors import OperatorLineage

    from airflow_provider_codat.datatypes import get_data_type
    from airflow_provider_codat.landing.destination import destination_path
    from airflow_provider_codat.landing.layout import run_folder_name
    from airflow_provider_codat.landing.manifest import read_manifest
    from airflow_provider_codat.values import CompanyId

    company_id = str(CompanyId.parse(company_id))
    data_type = get_data_type(data_type).key
    fields = record_fields().get(data_type)
    namespace, name = codat_dataset_name(str(hook.client.base_url), company_id, data_type)
    source = Dataset(namespace=namespace, name=name, facets=_schema_facets(fields, landed=False))

    folder = destination_path(destination) / company_id / data_type
    manifest = read_manifest(folder / run_folder_name(str(task_instance.run_id))) or {}
    summary = manifest.get("summary") or {}
    files = list(summary.get("files") or [])
    statistics = OutputStatisticsOutputDatasetFacet(
        rowCount=int(summary.get("records") or 0), fileCount=len(files), size=_total_bytes(files)
    )
    out_namespace, out_name = storage_dataset_name(folder)
    landed = OutputDataset(
        namespace=out_namespace,
        name=out_name,
        facets=_schema_facets(fields, landed=True),
        outputFacets={"outputStatistics": statistics} if summary else {},
    )
    return OperatorLineage(inputs=[source], outputs=[landed])


def _schema_facets(fields: list[list[str]] | None, *, landed: bool) -> dict[str, Any]:
    from airflow.providers.common.compat.openlineage.facet import (
        SchemaDatasetFacet,
        SchemaDatasetFacetFields,
    )

    if not fields:
        return {}
    columns = [SchemaDatasetFacetFields(name=name, type=kind) for name, kind in fields]
    if landed:
        name, kind, description = _CODAT_FIELD
        columns.append(SchemaDatasetFacetFields(name=name, type=kind, description=description))
    return {"schema": SchemaDatasetFacet(fields=columns)}


def _total_bytes(files: list[str]) -> int | None:
    """Bytes of the part files as stored; ``None`` when a file cannot be looked at (lineage never fails)."""
    try:
        return sum(ObjectStoragePath(uri).stat().st_size for uri in files)
    except (OSError, ValueError) as exc:
        log.warning("OpenLineage: could not read the size of the landed files: %s", exc)
        return None
