"""The Assets ``codat://{dataType}``: one per data type, updated by the extracts and by Codat's webhooks; and
``codat-table://{dataType}``: one per current-state table (docs/tables.md), updated by each table merge.

The one place that spells the URIs, and the one way a task sets the extra of the asset events it emits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_codat.datatypes import DataType

SCHEME = "codat"
TABLE_SCHEME = "codat-table"

# What Codat's other webhooks report, one asset each (docs/webhooks.md): readable by any task that declares
# the asset as an inlet, and listed with their events on the Assets page.
CONNECTION_STATUS_URI = f"{SCHEME}://connection-status"
DELETED_COMPANIES_URI = f"{SCHEME}://deleted-companies"
RATE_LIMIT_URI = f"{SCHEME}://rate-limit"


def asset_uri(data_type: str | DataType) -> str:
    """``codat://{dataType}``: the asset a data type's extract emits and its webhook events land on."""
    return f"{SCHEME}://{getattr(data_type, 'key', data_type)}"


def codat_asset(data_type: str | DataType) -> Asset:
    """The :class:`Asset` of a data type (for ``outlets`` and schedules)."""
    return Asset(asset_uri(data_type))


def codat_assets(data_types: Iterable[str | DataType]) -> list[Asset]:
    """The Assets of several data types, in their order (the Assets page lists them)."""
    return [codat_asset(data_type) for data_type in data_types]


def table_asset(data_type: str | DataType) -> Asset:
    """The :class:`Asset` ``codat-table://{dataType}`` of a data type's current-state table."""
    return Asset(f"{TABLE_SCHEME}://{getattr(data_type, 'key', data_type)}")


def table_assets(data_types: Iterable[str | DataType]) -> list[Asset]:
    """The table Assets of several data types, in their order."""
    return [table_asset(data_type) for data_type in data_types]


def set_asset_extras(
    context: Context,
    outlets: Iterable[Any],
    extras: Mapping[str, Mapping[str, Any]],
    *,
    asset: Callable[[str], Asset] = codat_asset,
) -> None:
    """Set the extra of the asset event of each declared outlet ``codat://{dataType}`` named in ``extras``.

    :param context: the task's context (its ``outlet_events``; nothing happens without them).
    :param outlets: the task's declared outlets; other assets and data types not in ``extras`` are left alone.
    :param extras: data type key -> the extra of its event.
    :param asset: the Asset of a data type key (:func:`codat_asset`, or :func:`table_asset` for tables).
    """
    events = context.get("outlet_events")
    if events is None:
        return
    by_uri = {asset(data_type).uri: extra for data_type, extra in extras.items()}
    for outlet in outlets or ():
        extra = by_uri.get(outlet.uri) if isinstance(outlet, Asset) else None
        if extra is not None:
            events[outlet].extra.update(extra)
