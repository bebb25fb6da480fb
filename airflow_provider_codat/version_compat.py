"""The Airflow names whose home or presence differs between the supported minors (3.1, 3.2, 3.3).

The rest of the provider, and its tests, import these names from here and never look at Airflow's version
themselves. Each name is taken from its newest home when Airflow has it there, else from the older one, so a
patch release that back- or forward-ports a name is handled without a version table:

* ``AirflowSensorTimeout``, ``AirflowSkipException``, ``AirflowRescheduleException``, ``TaskDeferred``: in
  ``airflow.sdk.exceptions`` since 3.2, in ``airflow.exceptions`` on 3.1.
* ``conf`` (the configuration a task reads): ``airflow.sdk.conf`` since 3.2, ``airflow.configuration.conf`` on 3.1.
* ``DagBag`` (tests only): ``airflow.dag_processing.dagbag`` since 3.2, ``airflow.models.dagbag`` on 3.1. It is
  imported on first use: it drags in Airflow's database models, which a task or a DAG file has no need for.
* :func:`amask_secret` and :func:`aextra_dejson`: Airflow's async secret masking (``airflow.sdk.log.amask_secret``,
  ``Connection.aextra_dejson``) arrived in 3.3.2. Before that the synchronous masking runs in a worker thread,
  where it may block on the supervisor without stalling the event loop (a triggerer's, for instance).
* :func:`hook_field_behaviour`, :func:`hook_form_widgets`: the connection form. Airflow 3.2 reads it from the
  provider info (``ui-field-behaviour``, ``conn-fields``); 3.1 asks the hook (``get_ui_field_behaviour()``,
  ``get_connection_form_widgets()``), so the hook answers from the same declaration.
* :func:`inlet_events_since`: the asset events of a task's inlet from a moment on; the accessor's ``after()``
  asks the API server to filter where the Task SDK has it, else the events are filtered in the task.
* :func:`fastapi_plugin_apps` (tests): how to ask Airflow for the plugins' FastAPI apps changed in 3.2.
* :func:`plugin_user_dependency`, :func:`plugin_auth_manager`: the user of a request to a plugin's FastAPI app
  and the auth manager, from ``airflow.api_fastapi.core_api.security`` and ``airflow.api_fastapi.app`` (not in
  Airflow's documented public interface, so only here). ``AuthManagerDep`` fails inside a mounted app.
* ``TOKEN_IN_LOCAL_STORAGE``: Airflow 3.1.0's UI moves the ``_token`` cookie into ``localStorage["token"]`` and
  its API server reads only the ``Authorization: Bearer`` header; from 3.1.1 the cookie stays and is read.
* :func:`external_view`: a plugin's ``external_views`` item with only the fields every minor's model accepts
  (``nav_top_level`` from 3.3 only; the ``base`` destination from 3.2 only).
* :func:`object_storage_namespace`: Airflow 3.1 keeps the connection id of ``s3://conn_id@bucket/key`` in the
  path's ``bucket`` and ``namespace``.

Not a name, but it differs too: on 3.1 an ``Asset`` cannot be hashed (its ``__hash__`` hashes its ``extra``
dict), so the provider keys assets by URI and never puts an ``Asset`` in a dict or a set; tests build the event
mappings with Airflow's own accessors.

``AIRFLOW_V_3_2_PLUS`` and ``AIRFLOW_V_3_3_PLUS`` are for the few tests whose expectation follows Airflow's own behaviour on a minor.

This module sits beside :mod:`airflow_provider_codat.errors` at the bottom of the import graph: it imports
nothing from the provider.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow import __version__ as _airflow_version
from packaging.version import Version

if TYPE_CHECKING:
    from datetime import datetime

    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import Connection, ObjectStoragePath

__all__ = [
    "AIRFLOW_V_3_2_PLUS",
    "AIRFLOW_V_3_3_PLUS",
    "AirflowRescheduleException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "DagBag",
    "TOKEN_IN_LOCAL_STORAGE",
    "TaskDeferred",
    "aextra_dejson",
    "amask_secret",
    "conf",
    "external_view",
    "fastapi_plugin_apps",
    "hook_field_behaviour",
    "hook_form_widgets",
    "inlet_events_since",
    "object_storage_namespace",
    "plugin_auth_manager",
    "plugin_user_dependency",
    "token_in_local_storage",
]

_base_version = Version(Version(_airflow_version).base_version)
#: Only for the tests whose expectation depends on Airflow's own behaviour; imports go by where names live.
AIRFLOW_V_3_2_PLUS = _base_version >= Version("3.2.0")
AIRFLOW_V_3_3_PLUS = _base_version >= Version("3.3.0")


def token_in_local_storage(version: str = _airflow_version) -> bool:
    """Whether Airflow ``version``'s UI keeps the user's token in ``localStorage["token"]`` and its API server
    reads only the ``Authorization: Bearer`` header (3.1.0); from 3.1.1 the ``_token`` cookie is read too."""
    return Version(Version(version).base_version) == Version("3.1.0")


#: Airflow 3.1.0 only: the UI keeps the user's token in ``localStorage["token"]`` and sends it as a bearer header.
TOKEN_IN_LOCAL_STORAGE = token_in_local_storage()

try:
    from airflow.sdk.exceptions import (
        AirflowRescheduleException,
        AirflowSensorTimeout,
        AirflowSkipException,
        TaskDeferred,
    )
except ImportError:  # Airflow 3.1: still in core; the task runner catches these very classes
    from airflow.exceptions import (  # type: ignore[no-redef]
        AirflowRescheduleException,
        AirflowSensorTimeout,
        AirflowSkipException,
        TaskDeferred,
    )

try:
    from airflow.sdk import conf
except ImportError:  # Airflow 3.1: the SDK has no configuration of its own yet
    from airflow.configuration import conf  # type: ignore[no-redef,assignment]

try:
    from airflow.sdk.log import amask_secret
except ImportError:  # before Airflow 3.3.2

    async def amask_secret(secret: Any, name: str | None = None) -> None:  # type: ignore[misc]
        """Mask ``secret`` in this process's logs and the supervisor's, from a coroutine.

        The synchronous ``mask_secret`` tells the supervisor with a blocking call, which must not run on the
        event loop thread; asgiref's worker thread lets that call reach the loop's comms while we await it.

        :param secret: the value (or a JSON structure of values) to mask.
        :param name: the key the value came under, if any.
        """
        from airflow.sdk import log as sdk_log
        from asgiref.sync import sync_to_async

        # Looked up at call time: mask_secret is what tests (and Airflow's own plumbing) may replace.
        await sync_to_async(sdk_log.mask_secret, thread_sensitive=False)(secret, name)


def hook_field_behaviour(connection_type: dict[str, Any]) -> dict[str, Any]:
    """A hook's ``get_ui_field_behaviour()`` answer, from the provider info's declaration of the connection type.

    Airflow 3.2 and later read the form's ``ui-field-behaviour`` and ``conn-fields`` from the provider info and
    no longer call the hook's methods when they are declared; 3.1 only calls the hook's methods.

    :param connection_type: the provider info's entry of ``connection-types``.
    """
    behaviour = connection_type.get("ui-field-behaviour", {})
    return {
        "hidden_fields": list(behaviour.get("hidden-fields", [])),
        "relabeling": dict(behaviour.get("relabeling", {})),
        "placeholders": dict(behaviour.get("placeholders", {})),
    }


def hook_form_widgets(connection_type: dict[str, Any]) -> dict[str, Any]:
    """A hook's ``get_connection_form_widgets()`` answer (WTForms fields), from ``conn-fields``.

    Airflow 3.1's API server calls this with stand-ins for WTForms, so it is imported here, at call time.
    Its form has text, integer, password and checkbox fields only: a number becomes a text field (the hook
    parses numbers given as text).

    :param connection_type: the provider info's entry of ``connection-types``.
    """
    from wtforms import IntegerField, PasswordField, StringField
    from wtforms.validators import Optional

    widgets = {}
    for name, field in connection_type.get("conn-fields", {}).items():
        schema = field.get("schema", {})
        types = schema.get("type", "string")
        types = [types] if isinstance(types, str) else list(types)
        if schema.get("format") == "password":
            kind = PasswordField
        elif "integer" in types:
            kind = IntegerField
        else:
            kind = StringField
        widgets[name] = kind(
            field.get("label", name), validators=[Optional()], description=field.get("description", "")
        )
    return widgets


def inlet_events_since(events: Any, since: datetime) -> list[Any]:
    """The events of an inlet's accessor (``context["inlet_events"][asset]``) at or after ``since``.

    :param events: the accessor.
    :param since: an aware datetime.
    """
    if hasattr(events, "after"):
        return list(events.after(since.isoformat()))
    return [event for event in events if event.timestamp >= since]


def fastapi_plugin_apps() -> list[dict[str, Any]]:
    """The plugins' ``fastapi_apps`` that Airflow's API server mounts (for tests).

    Airflow 3.2 returns them from ``plugins_manager.get_fastapi_plugins()``; 3.1 fills the module's
    ``fastapi_apps`` list in ``initialize_fastapi_plugins()``.
    """
    from airflow import plugins_manager

    if hasattr(plugins_manager, "get_fastapi_plugins"):
        apps, _ = plugins_manager.get_fastapi_plugins()
        return list(apps)
    plugins_manager.initialize_fastapi_plugins()
    return list(plugins_manager.fastapi_apps or [])


def object_storage_namespace(path: ObjectStoragePath) -> str:
    """``path.namespace`` (``s3://bucket``, or the bare protocol) without a connection id in it.

    Airflow 3.1 leaves the ``aws_default@`` of ``s3://aws_default@bucket/key`` in ``bucket`` (and so in
    ``namespace``); later minors take it out into the path's ``conn_id``.

    :param path: the storage location.
    """
    scheme, sep, bucket = path.namespace.partition("://")
    return f"{scheme}{sep}{bucket.rpartition('@')[2]}"


def object_storage_conn_id(path: ObjectStoragePath) -> str | None:
    """The Airflow connection a storage path names (``aws_default`` of ``s3://aws_default@bucket/key``).

    Airflow 3.1 keeps it in the path's storage options only; later minors in the path's ``conn_id``.

    :param path: the storage location.
    """
    return getattr(path, "conn_id", None) or path.storage_options.get("conn_id")


async def aextra_dejson(conn: Connection) -> dict[str, Any]:
    """Return the connection's extra as a dict, its secrets masked, without blocking the event loop.

    :param conn: a connection from ``BaseHook.aget_connection``.
    """
    if hasattr(conn, "aextra_dejson"):
        return await conn.aextra_dejson()
    from asgiref.sync import sync_to_async

    # Before 3.3.2 ``extra_dejson`` masks synchronously (see amask_secret): read it in a worker thread.
    return await sync_to_async(lambda: conn.extra_dejson, thread_sensitive=False)()


def plugin_user_dependency() -> Any:
    """The ``Depends`` of ``GetUserDep``: a route's parameter default that resolves the request's Airflow user
    (401 without a valid token). It reads the bearer header and, from 3.1.1, the ``_token`` cookie."""
    from typing import get_args

    from airflow.api_fastapi.core_api.security import GetUserDep

    return get_args(GetUserDep)[1]


def plugin_auth_manager() -> Any:
    """The API server's auth manager (``get_auth_manager()``; ``AuthManagerDep`` fails in a mounted app)."""
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager()


def external_view(
    *, name: str, href: str, url_route: str, category: str, icon: str | None = None
) -> dict[str, Any]:
    """An ``external_views`` item shown in the nav menu on every supported minor.

    Only the fields 3.1's model knows: an unknown value there fails ``/api/v2/plugins`` for every plugin.

    :param name: the menu entry.
    :param href: the page's URL (shown in an iframe at ``/plugin/<url_route>``).
    :param url_route: the page's route in the UI (unique across plugins).
    :param category: the menu group.
    :param icon: an icon's URL.
    """
    item: dict[str, Any] = {
        "name": name,
        "href": href,
        "url_route": url_route,
        "destination": "nav",
        "category": category,
    }
    if icon:
        item["icon"] = icon
    return item


def __getattr__(name: str) -> Any:
    if name == "DagBag":
        try:
            from airflow.dag_processing.dagbag import DagBag
        except ImportError:  # Airflow 3.1
            from airflow.models.dagbag import DagBag  # type: ignore[no-redef]
        return DagBag
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
