from __future__ import annotations

import json
from importlib import resources

import jsonschema

from airflow_provider_codat import PACKAGE_NAME, __version__, get_provider_info


def test_provider_info_validates_against_airflows_schema():
    schema = json.loads(resources.files("airflow").joinpath("provider_info.schema.json").read_text())
    info = get_provider_info()
    jsonschema.validate(info, schema)
    assert info["package-name"] == PACKAGE_NAME == "airflow-provider-codat"
    assert info["versions"] == [__version__]


def test_codat_connection_type_is_declared_as_data():
    (conn,) = get_provider_info()["connection-types"]
    assert conn["connection-type"] == "codat"
    assert conn["hook-name"] == "Codat"
    behaviour = conn["ui-field-behaviour"]
    assert behaviour["relabeling"]["host"] == "Base URL"
    assert behaviour["placeholders"]["host"] == "https://api.codat.io"
    assert {"schema", "login", "port"} <= set(behaviour["hidden-fields"])
    assert set(conn["conn-fields"]) == {
        "timeout",
        "max_retries",
        "max_retry_time",
        "portal_url",
        "webhook_secret",
    }


def test_entry_point_points_at_get_provider_info():
    from importlib.metadata import entry_points

    (ep,) = [
        ep
        for ep in entry_points(group="apache_airflow_provider")
        if ep.value.startswith("airflow_provider_codat")
    ]
    assert ep.load() is get_provider_info


def test_airflows_provider_manager_accepts_the_provider_and_its_connection_form():
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert manager.providers[PACKAGE_NAME].version == __version__
    behaviour = manager.field_behaviours["codat"]
    assert behaviour["relabeling"] == {"host": "Base URL", "password": "API key"}
    assert behaviour["placeholders"]["host"] == "https://api.codat.io"
    widgets = manager.connection_form_widgets
    assert {f"extra__codat__{name}" for name in ("timeout", "max_retries", "portal_url")} <= set(widgets)
    assert widgets["extra__codat__timeout"].field["schema"]["title"] == "Timeout (seconds)"
    # The webhook signing secret is a password field: masked in the form and in the connection list.
    assert widgets["extra__codat__webhook_secret"].is_sensitive
    assert not widgets["extra__codat__portal_url"].is_sensitive
