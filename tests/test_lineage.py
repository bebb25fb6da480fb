"""OpenLineage from the extract, through the real OpenLineage provider (the ``openlineage`` extra, installed by
the test extra): datasets, schema facet, output statistics; and the provider without the extra."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest
from airflow.providers.common.compat.openlineage.facet import OutputDataset
from airflow.providers.openlineage.extractors.manager import ExtractorManager
from airflow.sdk import ObjectStoragePath
from airflow.utils.state import TaskInstanceState
from openlineage.client.serde import Serde

from airflow_provider_codat.extract.lineage import (
    FIELDS_FILE,
    codat_dataset_name,
    record_fields,
)
from airflow_provider_codat.landing.destination import storage_dataset_name
from tests.lineage_fields import all_record_fields


def test_the_packaged_field_lists_are_what_codats_spec_says():
    packaged = json.loads(FIELDS_FILE.read_text())
    assert packaged == all_record_fields(), "regenerate with: .venv/bin/python -m tests.lineage_fields"
    assert ["modifiedDate", "string"] in packaged["invoices"] and ["id", "string"] in packaged["invoices"]


def test_dataset_names():
    assert codat_dataset_name("https://api.codat.io", "c0", "invoices") == (
        "codat://api.codat.io",
        "c0/invoices",
    )
    assert codat_dataset_name("http://127.0.0.1:8765/", "c0", "bills")[0] == "codat://127.0.0.1:8765"
    assert storage_dataset_name(ObjectStoragePath("file:///data/codat/c0/bills")) == (
        "file",
        "/data/codat/c0/bills",
    )
    assert storage_dataset_name(ObjectStoragePath("s3://aws_default@bucket/codat/c0")) == (
        "s3://bucket",
        "codat/c0",
    )


def _lineage(operator, run_id: str):
    """What the OpenLineage provider extracts when the task completes (its own extractor manager)."""
    task_instance = SimpleNamespace(run_id=run_id, task_id=operator.task_id, map_index=-1)
    dag_run = SimpleNamespace(run_id=run_id)
    return ExtractorManager().extract_metadata(dag_run, operator, TaskInstanceState.SUCCESS, task_instance)


def _operator(codat_simulator, monkeypatch, company, data_type, destination):
    monkeypatch.setenv("AIRFLOW_CONN_CODAT_DEFAULT", codat_simulator.connection_json)
    from airflow_provider_codat.operators.extract import CodatExtractOperator

    return CodatExtractOperator(
        task_id=f"extract_{data_type}", company_id=company, data_type=data_type, destination=destination
    )


def test_the_extract_reports_codat_in_the_landing_out_with_schema_and_row_counts(
    codat_simulator, company, monkeypatch, tmp_path
):
    operator = _operator(codat_simulator, monkeypatch, company, "invoices", f"file://{tmp_path}/out")
    first = operator.execute({"run_id": "run1"})
    codat_simulator.control.mutate(company, "invoices", created=2, modified=3, deleted=1)
    second = operator.execute({"run_id": "run2"})
    assert second["records"] == 6 < first["records"]

    lineage = _lineage(operator, "run2")
    (source,) = lineage.inputs
    host = codat_simulator.base_url.removeprefix("http://")
    assert (source.namespace, source.name) == (f"codat://{host}", f"{company}/invoices")
    assert [(f.name, f.type) for f in source.facets["schema"].fields] == [
        tuple(field) for field in record_fields()["invoices"]
    ]
    (landed,) = lineage.outputs
    assert isinstance(landed, OutputDataset)
    assert (landed.namespace, landed.name) == ("file", f"{tmp_path}/out/{company}/invoices")
    assert landed.facets["schema"].fields[-1].name == "_codat"
    statistics = landed.outputFacets["outputStatistics"]
    assert statistics.rowCount == 6 and statistics.fileCount == len(second["files"]) == 1
    assert statistics.size == sum(ObjectStoragePath(f).stat().st_size for f in second["files"]) > 0
    # The first run's figures stay the first run's.
    assert _lineage(operator, "run1").outputs[0].outputFacets["outputStatistics"].rowCount == first["records"]
    # The facets serialise to OpenLineage's event JSON.
    as_json = Serde.to_dict(landed)
    assert as_json["outputFacets"]["outputStatistics"]["rowCount"] == 6
    first_field = as_json["facets"]["schema"]["fields"][0]
    assert (first_field["name"], first_field["type"]) == ("id", "string")


def test_a_type_the_spec_does_not_describe_has_no_schema_facet(
    codat_simulator, company, monkeypatch, tmp_path
):
    assert "taxRates" not in record_fields()
    operator = _operator(codat_simulator, monkeypatch, company, "taxRates", f"file://{tmp_path}/out")
    summary = operator.execute({"run_id": "run1"})
    lineage = _lineage(operator, "run1")
    assert lineage.inputs[0].name == f"{company}/taxRates" and "schema" not in lineage.inputs[0].facets
    assert lineage.outputs[0].outputFacets["outputStatistics"].rowCount == summary["records"] > 0


def test_the_provider_works_without_the_openlineage_extra(tmp_path):
    # Blocks what the lineage needs (the OpenLineage client and the provider's extractors); Airflow's own
    # provider discovery still reads the installed provider's info, as it would any provider's.
    script = textwrap.dedent(
        """
        import sys

        BLOCKED = ("openlineage", "airflow.providers.openlineage.extractors",
                   "airflow.providers.common.compat.openlineage")

        class NoOpenLineage:
            def find_spec(self, name, path=None, target=None):
                if name.startswith(BLOCKED):
                    raise ModuleNotFoundError(f"No module named {name!r}")
                return None

        sys.meta_path.insert(0, NoOpenLineage())
        from airflow_provider_codat.operators.extract import CodatExtractOperator
        import airflow_provider_codat.extract.lineage

        op = CodatExtractOperator(
            task_id="x", company_id="6f1c3c9e-6a2b-4a55-9a49-0a3b1c2d3e4f", data_type="invoices",
            destination="file:///tmp/codat",
        )
        assert not [m for m in sys.modules if m.startswith(BLOCKED)]
        try:
            op.get_openlineage_facets_on_complete(None)
        except ImportError:
            print("ok", type(op).__name__)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("ok CodatExtractOperator")


@pytest.fixture
def company(codat_simulator) -> str:
    return codat_simulator.control.linked_company_ids()[0]
