from __future__ import annotations

import email.parser
import importlib
import importlib.util
import inspect
import json
import pkgutil
import subprocess
import sys
import warnings
import zipfile
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
from airflow.sdk import BaseOperatorLink

from airflow_provider_codat import DOCUMENTATION_URL, PACKAGE_NAME, __version__, get_provider_info
from airflow_provider_codat.version_compat import AIRFLOW_V_3_2_PLUS, AIRFLOW_V_3_3_PLUS

# One worker runs this module: its module-scoped fixture is costly to build (pytest-xdist --dist loadgroup).
pytestmark = pytest.mark.xdist_group("test_provider_info")

ROOT = Path(__file__).resolve().parents[1]


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
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert manager.providers[PACKAGE_NAME].version == __version__
    # The form as the UI receives it (GET /ui/connections/hook_meta), on every minor.
    (meta,) = [m for m in HookMetaService.hook_meta_data() if m.connection_type == "codat"]
    standard = meta.standard_fields
    assert (standard.host.title, standard.host.placeholder) == ("Base URL", "https://api.codat.io")
    assert standard.password.title == "API key" and not standard.password.hidden
    assert standard.login.hidden and standard.port.hidden and standard.url_schema.hidden
    extra = meta.extra_fields
    assert set(extra) == {"timeout", "max_retries", "max_retry_time", "portal_url", "webhook_secret"}
    assert extra["timeout"]["schema"]["title"] == "Timeout (seconds)"
    assert extra["max_retries"]["schema"]["type"] == ["integer", "null"]
    assert extra["webhook_secret"]["schema"]["format"] == "password"
    assert "format" not in extra["portal_url"]["schema"]
    if not AIRFLOW_V_3_2_PLUS:
        # Airflow 3.1 takes the form from the hook's WTForms methods, which only its API server can call
        # without WTForms installed (it stands in for WTForms, as above); 3.2+ reads the provider info anywhere.
        return
    behaviour = manager.field_behaviours["codat"]
    assert behaviour["relabeling"] == {"host": "Base URL", "password": "API key"}
    assert behaviour["placeholders"]["host"] == "https://api.codat.io"
    widgets = manager.connection_form_widgets
    assert {f"extra__codat__{name}" for name in ("timeout", "max_retries", "portal_url")} <= set(widgets)
    assert widgets["extra__codat__timeout"].field["schema"]["title"] == "Timeout (seconds)"
    # The webhook signing secret is a password field: masked in the form and in the connection list.
    assert widgets["extra__codat__webhook_secret"].is_sensitive
    assert not widgets["extra__codat__portal_url"].is_sensitive


def _modules(section: str) -> set[str]:
    return {module for entry in get_provider_info()[section] for module in entry["python-modules"]}


def _package_modules_defining(package: str, base: type) -> set[str]:
    """Modules of ``package`` that define (not merely import) a subclass of ``base``."""
    found = set()
    for info in pkgutil.iter_modules(importlib.import_module(package).__path__, package + "."):
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if inspect.isclass(value) and issubclass(value, base) and value.__module__ == info.name:
                found.add(info.name)
    return found


# Listed ahead of the branch that adds it (CodatCompanySyncOperator); drop from here once it is merged.
_ADDED_BY_ANOTHER_BRANCH = {"airflow_provider_codat.operators.company"}


def test_every_hook_operator_sensor_and_trigger_of_the_package_is_listed():
    from airflow.sdk import BaseHook, BaseOperator
    from airflow.sdk.bases.sensor import BaseSensorOperator
    from airflow.triggers.base import BaseTrigger

    sensors = _package_modules_defining("airflow_provider_codat.sensors", BaseSensorOperator)
    operators = _package_modules_defining("airflow_provider_codat.operators", BaseOperator)
    assert "airflow_provider_codat.operators.extract" in operators
    assert operators <= _modules("operators")
    assert sensors <= _modules("sensors")
    assert _package_modules_defining("airflow_provider_codat.triggers", BaseTrigger) <= _modules("triggers")
    assert _package_modules_defining("airflow_provider_codat.hooks", BaseHook) <= _modules("hooks")
    listed = _modules("operators") | _modules("sensors") | _modules("triggers") | _modules("hooks")
    missing = {name for name in listed if importlib.util.find_spec(name) is None}
    assert missing <= _ADDED_BY_ANOTHER_BRANCH, missing
    for name in get_provider_info()["extra-links"]:
        module, _, cls = name.rpartition(".")
        assert issubclass(getattr(importlib.import_module(module), cls), BaseOperatorLink)


def test_providers_manager_sees_hooks_links_triggers_and_the_documentation_url():
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    provider = manager.providers[PACKAGE_NAME]
    # Airflow takes the documentation URL from the package's Project-URL "Documentation". Before 3.3 it keeps
    # the blank after the comma of "Documentation, <url>" (Airflow's parsing, not the package's metadata).
    expected_url = DOCUMENTATION_URL if AIRFLOW_V_3_3_PLUS else f" {DOCUMENTATION_URL}"
    assert provider.data["documentation-url"] == expected_url
    assert "airflow_provider_codat.operators.extract" in _modules("operators")
    assert provider.data["hooks"] == get_provider_info()["hooks"]
    assert "airflow_provider_codat.links.CodatCompanyLink" in manager.extra_links_class_names
    assert any(t.trigger_class_name == "airflow_provider_codat.triggers.sync" for t in manager.trigger)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hook = manager.hooks["codat"]
    assert hook.hook_class_name == "airflow_provider_codat.hooks.codat.CodatHook"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from the working tree with hatchling (the project's build backend), no network."""
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, hatchling.build as b; print(b.build_wheel(sys.argv[1]))",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return out / proc.stdout.strip().splitlines()[-1]


def test_the_wheel_metadata_names_the_license_home_page_and_documentation(wheel):
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = email.parser.Parser().parsestr(archive.read(name).decode())
    # PEP 639: the SPDX expression is the license field (pip >= 25.1 shows it as License-Expression).
    assert metadata["License-Expression"] == "Apache-2.0"
    urls = dict(entry.split(", ", 1) for entry in metadata.get_all("Project-URL"))
    # pip shows the "Homepage" Project-URL as Home-page; Airflow reads "Documentation".
    assert urls["Homepage"].startswith("https://")
    assert urls["Documentation"] == DOCUMENTATION_URL == get_provider_info()["documentation-url"]


def test_the_wheel_ships_py_typed_and_the_lineage_field_lists(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert "airflow_provider_codat/py.typed" in names
    assert (
        "airflow_provider_codat/extract/lineage_fields.json" in names
    )  # the schema facet's fields, not the spec
    assert "airflow_provider_codat/tables/schemas.json" in names  # the tables' column types, not the spec
    assert not [n for n in names if n.endswith(("Codat-Lending.json", "Codat-Platform.json"))]
