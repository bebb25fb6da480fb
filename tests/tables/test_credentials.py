"""Tables on Google Cloud Storage and Azure take the credentials of the Airflow connection their path names, as
the landing does: each connection kind mapped to delta-rs's options, and delta-rs seen using them against a
local HTTP server standing in for the store (no Google or Azure account here)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Callable, Iterator

import httpx
import pytest
from airflow.sdk import ObjectStoragePath
from deltalake import DeltaTable

from airflow_provider_codat.errors import CodatValidationError
from airflow_provider_codat.tables.location import (
    azure_options,
    delta_location,
    delta_options,
    google_options,
)
from tests.e2e.standalone import free_port, until

SECRET = "c2VjcmV0LWtleQ=="  # base64, as an Azure account key is


def connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields) -> None:
    """The connection ``conn_id`` as Airflow reads it from the environment."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))


def test_a_google_key_inline_or_as_a_file_and_none_for_the_machines_identity(monkeypatch):
    key = {"type": "service_account", "client_email": "lake@project.iam.gserviceaccount.com"}
    connection(monkeypatch, "inline", conn_type="google_cloud_platform", extra={"keyfile_dict": key})
    connection(
        monkeypatch, "as_text", conn_type="google_cloud_platform", extra={"keyfile_dict": json.dumps(key)}
    )
    connection(monkeypatch, "file", conn_type="google_cloud_platform", extra={"key_path": "/keys/lake.json"})
    legacy = {"extra__google_cloud_platform__key_path": "/keys/old.json"}
    connection(monkeypatch, "legacy", conn_type="google_cloud_platform", extra=legacy)
    connection(monkeypatch, "adc", conn_type="google_cloud_platform", extra={"project": "p"})
    assert json.loads(google_options("inline")["google_service_account_key"]) == key
    assert json.loads(google_options("as_text")["google_service_account_key"]) == key
    assert google_options("file") == {"google_service_account_path": "/keys/lake.json"}
    assert google_options("legacy") == {"google_service_account_path": "/keys/old.json"}
    assert google_options("adc") == {}  # delta-rs finds the machine's identity itself
    assert delta_options("gs", None) == {}


@pytest.mark.parametrize("field", ["key_secret_name", "impersonation_chain", "credential_config_file"])
def test_google_credentials_delta_rs_cannot_take_fail_before_any_write_naming_the_field(monkeypatch, field):
    extra = {"keyfile_dict": {"private_key": "do-not-show"}, field: "some-value"}
    connection(monkeypatch, "lake", conn_type="google_cloud_platform", extra=extra)
    with pytest.raises(CodatValidationError, match=field) as raised:
        delta_location(ObjectStoragePath("gs://lake@bucket/codat/_tables/invoices"))
    assert "do-not-show" not in str(raised.value)


def test_azure_account_key_service_principal_sas_and_connection_string(monkeypatch):
    connection(monkeypatch, "key", conn_type="wasb", login="acct", password=SECRET)
    connection(monkeypatch, "host", conn_type="adls", host="acct.dfs.core.windows.net", password=SECRET)
    principal = {"tenant_id": "tenant-1"}
    connection(
        monkeypatch, "spn", conn_type="adls", host="acct", login="app-1", password="s3cr3t", extra=principal
    )
    sas = {"sas_token": "sv=2024&sig=abc", "account_key": ""}  # an empty extra removes the password's key
    connection(monkeypatch, "sas", conn_type="wasb", login="acct", password=SECRET, extra=sas)
    managed = {"managed_identity_client_id": "mi-1", "anon": "false"}
    connection(monkeypatch, "managed", conn_type="azure_data_lake", login="acct", extra=managed)
    azurite = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" + SECRET + ";"
        "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
    )
    connection(monkeypatch, "azurite", conn_type="wasb", extra={"connection_string": azurite})
    connection(monkeypatch, "public", conn_type="wasb", login="acct", extra={"anon": True})
    account = {"azure_storage_account_name": "acct"}
    assert azure_options("key") == account | {"azure_storage_account_key": SECRET}
    assert azure_options("host") == account | {"azure_storage_account_key": SECRET}
    assert azure_options("spn") == account | {
        "azure_storage_client_id": "app-1",
        "azure_storage_client_secret": "s3cr3t",
        "azure_storage_tenant_id": "tenant-1",
    }
    assert azure_options("sas") == account | {"azure_storage_sas_token": "sv=2024&sig=abc"}
    assert azure_options("managed") == account | {"azure_storage_client_id": "mi-1"}
    assert azure_options("azurite") == {
        "azure_storage_account_name": "devstoreaccount1",
        "azure_storage_account_key": SECRET,
        "azure_storage_endpoint": "http://127.0.0.1:10000/devstoreaccount1",
        "azure_allow_http": "true",
    }
    assert azure_options("public") == account | {"azure_skip_signature": "true"}
    uri, options = delta_location(ObjectStoragePath("abfs://key@container/codat/_tables/invoices"))
    assert (uri, options) == ("abfs://container/codat/_tables/invoices", azure_options("key"))


@pytest.fixture
def store(tmp_path) -> Iterator[tuple[str, Callable[[], list[dict]]]]:
    """A stand-in object store (:mod:`tests.tables.recorder`): its URL, and the requests it received so far."""
    port, requests, log_file = free_port(), tmp_path / "requests.jsonl", tmp_path / "recorder.log"
    with log_file.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "tests.tables.recorder", str(port), str(requests)], stdout=log, stderr=log
        )
    url = f"http://127.0.0.1:{port}"
    try:
        until(
            "the stand-in store",
            lambda: httpx.get(f"{url}/ready").status_code == 404,
            30,
            server,
            log_file,
            0.1,
        )
        requests.unlink()

        def seen() -> list[dict]:
            return (
                [json.loads(line) for line in requests.read_text().splitlines()] if requests.exists() else []
            )

        yield url, seen
    finally:
        server.kill()
        server.wait()


def _open(uri: str, options: dict[str, str]) -> None:
    with contextlib.suppress(OSError):  # the stand-in has no table; what matters is the request delta-rs sent
        DeltaTable.is_deltatable(uri, storage_options=options)


def test_delta_rs_signs_its_azure_requests_with_the_connections_account_key(monkeypatch, store):
    url, seen = store
    connection(
        monkeypatch, "lake", conn_type="wasb", login="acct", password=SECRET, extra={"account_host": url}
    )
    _open(*delta_location(ObjectStoragePath("abfs://lake@container/codat/_tables/invoices")))
    assert seen(), "delta-rs sent nothing to the connection's endpoint"
    request = seen()[0]
    assert request["path"].startswith("/container?") and "_delta_log" in request["path"]
    assert request["headers"]["authorization"].startswith(
        "SharedKey acct:"
    )  # signed with the connection's key


def test_delta_rs_reads_the_connections_google_key(monkeypatch, store):
    url, seen = store
    key = {  # object_store's fields for a test server: its URL, and no token exchange
        "type": "service_account",
        "client_email": "lake@project.iam.gserviceaccount.com",
        "private_key": "",
        "private_key_id": "",
        "gcs_base_url": url,
        "disable_oauth": True,
    }
    connection(monkeypatch, "lake", conn_type="google_cloud_platform", extra={"keyfile_dict": key})
    _open(*delta_location(ObjectStoragePath("gs://lake@bucket/codat/_tables/invoices")))
    assert seen(), "delta-rs did not use the connection's key (its server URL)"
    assert any(
        request["path"].startswith("/bucket?") and "_delta_log" in request["path"] for request in seen()
    )
