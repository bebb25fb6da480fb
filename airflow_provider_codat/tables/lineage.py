"""OpenLineage of a table merge: each merged table as an output dataset, named as its storage location
(``file`` + absolute path, ``s3://bucket`` + key), with its rows inserted, updated and deleted.

Imported only when the OpenLineage provider asks (the ``openlineage`` extra), like :mod:`airflow_provider_codat.extract.lineage`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import ObjectStoragePath

from airflow_provider_codat.landing.destination import storage_dataset_name

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage


def tables_lineage(results: dict[str, dict[str, Any]]) -> OperatorLineage:
    """The lineage of a finished merge task from its return value ``{data_type: result}``.

    :param results: what :class:`~airflow_provider_codat.operators.tables.CodatMergeTablesOperator` returned.
    """
    from airflow.providers.common.compat.openlineage.facet import (
        OutputDataset,
        OutputStatisticsOutputDatasetFacet,
    )
    from airflow.providers.openlineage.extractors import OperatorLineage

    outputs = []
    for result in results.values():
        location = result["table"]
        uri = location if "://" in location else "file://" + location
        namespace, name = storage_dataset_name(ObjectStoragePath(uri))
        rows = int(result["inserted"]) + int(result["updated"]) + int(result["deleted"])
        statistics = OutputStatisticsOutputDatasetFacet(rowCount=rows)
        outputs.append(
            OutputDataset(namespace=namespace, name=name, outputFacets={"outputStatistics": statistics})
        )
    return OperatorLineage(inputs=[], outputs=outputs)
