"""Landing and tables on ``s3://``, end to end: a real extract from the simulator lands through the Amazon
provider's S3 filesystem, the merge writes the Delta table with delta-rs, both with the credentials, endpoint and
region of one Airflow connection, against an S3 server on localhost (moto's)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta

import boto3
import httpx
import pytest
from deltalake import DeltaTable

from airflow_provider_codat.tables.location import delta_location, s3_options, tables_root
from airflow_provider_codat.tables.maintenance import maintain_tables
from airflow_provider_codat.tables.merge import merge_runs
from tests.e2e.standalone import free_port, until
from tests.tables.conftest import assert_table_is_truth, land_changing_runs, truth

# One worker runs this module: its module-scoped fixture is costly to build (pytest-xdist --dist loadgroup).
pytestmark = pytest.mark.xdist_group("test_s3")

BUCKET = "codat-lake"
CONN_ID = "codat_lake"
LANDING = f"s3://{CONN_ID}@{BUCKET}/landing"
RUNS = ("scheduled__2026-11-27T00:00:00+00:00", "scheduled__2026-11-28T00:00:00+00:00")
KEY_ID, SECRET = "AKIACODATLAKETEST", "lake-secret-for-tests"  # moto takes any


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory):
    """An S3 server on a free port with an empty bucket, one per module (Airflow keeps a connection's filesystem
    for the process); the connection ``codat_lake`` points at it, and nothing in the environment does (the
    connection is the only way there)."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log_file = tmp_path_factory.mktemp("s3") / "moto.log"
    # A process of its own: delta-rs holds the GIL while it waits for some answers, which a server in this
    # process could then never send.
    with log_file.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log
        )
    until(
        "the S3 server",
        lambda: httpx.get(f"{endpoint}/moto-api/", timeout=2),
        60,
        server,
        log_file,
        every=0.2,
    )
    with pytest.MonkeyPatch.context() as env:
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
            env.delenv(name, raising=False)
        env.setenv("AWS_EC2_METADATA_DISABLED", "true")
        _client(endpoint).create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-2"}
        )
        extra = {"endpoint_url": endpoint, "region_name": "eu-west-2"}
        connection = {"conn_type": "aws", "login": KEY_ID, "password": SECRET, "extra": extra}
        env.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(connection))
        yield endpoint
    server.terminate()
    server.wait(timeout=30)


def _client(endpoint: str):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="eu-west-2",
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
    )


def test_delta_rs_takes_the_connections_credentials_endpoint_and_region(s3_endpoint):
    assert s3_options(CONN_ID) == {
        "AWS_ACCESS_KEY_ID": KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_REGION": "eu-west-2",
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ALLOW_HTTP": "true",
    }
    assert s3_options(None) == {}  # no connection: delta-rs looks where boto3 would
    uri, options = delta_location(tables_root(LANDING) / "invoices")
    assert uri == f"s3://{BUCKET}/landing/_tables/invoices" and options["AWS_ENDPOINT_URL"] == s3_endpoint


def test_runs_landed_and_merged_on_s3_equal_the_simulator_and_survive_maintenance(
    s3_endpoint, codat_simulator, extract
):
    control = codat_simulator.control
    companies = control.linked_company_ids()[:2]
    land_changing_runs(control, extract, companies, RUNS, LANDING)
    for run_id in RUNS:
        merged = merge_runs(data_type="invoices", destination=LANDING, company_ids=companies, run_id=run_id)
        assert len(merged.merged) == len(companies) and merged.table.startswith(f"s3://{BUCKET}/")
    again = merge_runs(data_type="invoices", destination=LANDING, company_ids=companies, run_id=RUNS[0])
    assert again.merged == [] and len(again.already_held) == len(companies)  # the history is read on S3 too

    uri, options = delta_location(tables_root(LANDING) / "invoices")
    rows = DeltaTable(uri, storage_options=options).to_pyarrow_table().to_pylist()
    assert_table_is_truth(rows, truth(control, companies, "invoices"))
    objects = _client(s3_endpoint).list_objects_v2(
        Bucket=BUCKET, Prefix="landing/_tables/invoices/_delta_log/"
    )
    assert len(objects.get("Contents", [])) >= 2  # the table's log is in the bucket, not on local disk

    done = maintain_tables(tables_root(LANDING), retention=timedelta(0))
    assert any(entry["table"] == uri and entry["vacuumed"] > 0 for entry in done)
    compacted = DeltaTable(uri, storage_options=options)
    assert len(compacted.file_uris()) <= 2  # one per month partition at most
    assert sorted(compacted.to_pyarrow_table().to_pylist(), key=lambda row: row["_codat_key"]) == sorted(
        rows, key=lambda row: row["_codat_key"]
    )
