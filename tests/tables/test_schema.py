"""The shipped column types are what Codat's spec says; the merge's lineage names each table it wrote."""

from __future__ import annotations

import pyarrow as pa

from airflow_provider_codat.operators.tables import tables_lineage
from airflow_provider_codat.tables.rows import table_schema
from airflow_provider_codat.tables.schema import DECIMAL, TIMESTAMP, record_schemas
from tests.table_schemas import all_schemas


def test_the_packaged_schemas_are_what_codats_spec_says():
    assert record_schemas() == all_schemas(), "regenerate with: .venv/bin/python -m tests.table_schemas"


def test_numbers_are_exact_decimals_dates_timestamps_objects_structs():
    schema = table_schema("invoices", [])
    assert schema.field("totalAmount").type == DECIMAL == pa.decimal128(38, 18)
    assert schema.field("issueDate").type == schema.field("modifiedDate").type == TIMESTAMP
    assert schema.field("currency").type == pa.string()  # a $ref plus a description part
    line = schema.field("lineItems").type.value_type
    assert (
        line.field("unitAmount").type == DECIMAL
        and line.field("accountRef").type.field("id").type == pa.string()
    )
    assert schema.field("supplementalData").type.field("content").type == pa.string()  # free-form: JSON text
    assert schema.names[-10:] == [
        "_codat_company_id",
        "_codat_connection_id",
        "_codat_bank_account_id",
        "_codat_extracted_at",
        "_codat_run",
        "_codat_deleted",
        "_codat_modified",
        "_codat_key",
        "_codat_key_hash",
        "_codat_month",
    ]


def test_openlineage_names_each_merged_table_with_its_row_counts():
    results = {
        "invoices": {"table": "/data/codat/_tables/invoices", "inserted": 3, "updated": 2, "deleted": 1},
        "bills": {"table": "s3://bucket/codat/_tables/bills", "inserted": 0, "updated": 0, "deleted": 0},
    }
    lineage = tables_lineage(results)
    outputs = {(o.namespace, o.name): o.outputFacets["outputStatistics"].rowCount for o in lineage.outputs}
    assert outputs == {("file", "/data/codat/_tables/invoices"): 6, ("s3://bucket", "codat/_tables/bills"): 0}
    assert lineage.inputs == []
