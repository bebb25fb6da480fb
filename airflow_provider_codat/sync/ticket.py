"""What a wait is for: the refresh operators' ticket (:class:`Ticket`), and :class:`WaitSpec` (a ticket's datasets,
or types synced after a moment), each checked in full before any request.

A ticket reaches a sensor or a trigger through XCom or a template (sometimes as a string): it is checked here,
whole, before anything is sent: the company id and every dataset id must be UUIDs, every data type in the
catalogue. Both carry checked values (:class:`~airflow_provider_codat.values.CompanyId`,
:class:`~airflow_provider_codat.values.DatasetId`) inside and plain strings in ``to_json()``, the form that
leaves for XCom and trigger kwargs.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow_provider_codat.datatypes import get_data_type
from airflow_provider_codat.errors import CodatValidationError
from airflow_provider_codat.safe_repr import shorten
from airflow_provider_codat.sync.interval import CLOCK
from airflow_provider_codat.timestamps import format_timestamp, parse_timestamp
from airflow_provider_codat.values import CompanyId, DatasetId

TICKET_SHAPE = "{company_id, requested_at, datasets: {data type: dataset id}, joined}"
# A ticket names one dataset per data type: more entries than the catalogue holds is not a ticket.
MAX_TICKET_CHARS = 20_000


def to_seconds(value: timedelta | float | int | None, what: str) -> float | None:
    if value is None:
        return None
    try:
        seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    except (TypeError, ValueError, OverflowError):
        # float()'s own message repeats the whole input.
        raise CodatValidationError(
            f"{what} must be a number of seconds or a timedelta, got {shorten(value)}."
        ) from None
    if seconds < 0:
        raise CodatValidationError(f"{what} must not be negative, got {shorten(value)}.")
    return seconds


def _literal(value: str) -> Any:
    """A rendered template: JSON, or a Python literal (a template rendered without native objects)."""
    text = value.strip()
    if text[:1] in "[{(":
        try:
            return json.loads(text)
        except ValueError:
            try:
                return ast.literal_eval(text)
            except (ValueError, SyntaxError):
                return text
    return text


def normalize_data_types(value: Any, *, required: bool = True) -> list[str] | None:
    """A list of catalogue keys from a list, a tuple, a comma-separated string or a rendered list literal (keys or
    catalogue entries).

    :raises CodatValidationError: for a key not in the catalogue, or no key when ``required`` (before any
        request).
    """
    if isinstance(value, str):
        value = _literal(value)
        if isinstance(value, str):
            value = [part for part in (p.strip() for p in value.split(",")) if part]
    if value is None or (not value and not required):
        if required:
            raise CodatValidationError("data_types is required: name at least one data type.")
        return None
    if not isinstance(value, list | tuple | set | frozenset):
        raise CodatValidationError(f"data_types must be a list of data type keys, got {shorten(value)}.")
    keys: list[str] = []
    for item in value:
        key = get_data_type(item).key
        if key not in keys:
            keys.append(key)
    if required and not keys:
        raise CodatValidationError("data_types is required: name at least one data type.")
    return keys


def _checked_datasets(datasets: Mapping[Any, Any], what: str) -> dict[str, DatasetId]:
    """Data type key -> dataset id, each checked (``what`` names the ids in the error: ``"dataset id of"``)."""
    checked: dict[str, DatasetId] = {}
    for data_type, dataset_id in datasets.items():
        key = get_data_type(data_type).key
        checked[key] = DatasetId.parse(dataset_id, f"{what} {key}")
    return checked


def make_ticket(
    company_id: str, requested_at: str, datasets: Mapping[str, str], joined: Iterable[str]
) -> dict[str, Any]:
    """The ticket a refresh returns (plain JSON: its XCom ``return_value``), datasets and joined types sorted."""
    return {
        "company_id": str(company_id),
        "requested_at": requested_at,
        "datasets": {key: str(dataset_id) for key, dataset_id in sorted(datasets.items())},
        "joined": sorted(set(joined)),
    }


@dataclass(frozen=True)
class Ticket:
    """A refresh operator's ticket, checked in full.

    :param company_id: the company.
    :param datasets: data type key -> the dataset the refresh queued or joined.
    :param joined: the types whose running sync was joined.
    :param requested_at: when the refresh was asked for (ISO UTC), as the ticket says.
    """

    company_id: CompanyId
    datasets: dict[str, DatasetId]
    joined: list[str]
    requested_at: Any = None

    @classmethod
    def parse(cls, value: Any) -> Ticket:
        """From a dict or its JSON / repr string (a template rendered as text).

        :raises CodatValidationError: naming what is wrong (the shape, the company id, a data type, a dataset id).
        """
        if isinstance(value, str):
            if len(value) > MAX_TICKET_CHARS:
                raise CodatValidationError(
                    f"ticket is a {len(value)}-character string; a ticket is {TICKET_SHAPE}: pass a refresh "
                    "operator's return value."
                )
            value = _literal(value)
        if not isinstance(value, dict) or not isinstance(value.get("datasets"), dict):
            raise CodatValidationError(
                f"ticket must be what a Codat refresh operator returns, {TICKET_SHAPE}; got {shorten(value)}."
            )
        company_id = CompanyId.parse(value.get("company_id"), "ticket company_id")
        datasets = _checked_datasets(value["datasets"], "ticket dataset id of")
        joined = value.get("joined") or []
        if not isinstance(joined, list) or any(t not in datasets for t in joined):
            raise CodatValidationError(
                f"ticket joined must list data types of its datasets, got {shorten(joined)}."
            )
        return cls(company_id, datasets, list(joined), value.get("requested_at"))

    def to_json(self) -> dict[str, Any]:
        """The ticket as plain JSON, canonical ids: ``{company_id, requested_at, datasets, joined}``."""
        return {
            "company_id": str(self.company_id),
            "requested_at": self.requested_at,
            "datasets": {key: str(dataset_id) for key, dataset_id in self.datasets.items()},
            "joined": list(self.joined),
        }


def parse_ticket(value: Any) -> dict[str, Any]:
    """A ticket checked in full (:meth:`Ticket.parse`), as plain JSON with canonical ids.

    :raises CodatValidationError: naming what is wrong (the shape, the company id, a data type, a dataset id).
    """
    return Ticket.parse(value).to_json()


def iso_utc(value: Any) -> str | None:
    """Normalise a datetime or an ISO string to ISO UTC (``...Z``); ``None`` stays ``None``."""
    if value is None or value == "":
        return None
    moment = parse_timestamp(value)
    if moment is None:
        raise CodatValidationError(f"Not an ISO 8601 date-time: {shorten(value)}.")
    return format_timestamp(moment)


def utcnow_iso() -> str:
    return format_timestamp(datetime.fromtimestamp(CLOCK.now(), tz=UTC))


@dataclass
class WaitSpec:
    """What a wait is for, checked in full when built; plain JSON with :meth:`to_json`.

    :param company_id: the company (a UUID; a :class:`CompanyId` is taken as it is).
    :param datasets: data type -> dataset id (a ticket); or
    :param data_types: the types to wait for, with
    :param synced_after: ISO UTC moment the successful sync must be at or after.
    :raises CodatValidationError: naming the first thing that is wrong.
    """

    company_id: CompanyId
    datasets: dict[str, DatasetId] | None = None
    data_types: list[str] | None = None
    synced_after: str | None = None

    def __post_init__(self) -> None:
        self.company_id = CompanyId.parse(self.company_id, "company_id")
        if self.datasets is not None:
            if not isinstance(self.datasets, dict):
                raise CodatValidationError(
                    f"datasets must map data types to dataset ids, got {shorten(self.datasets)}."
                )
            self.datasets = _checked_datasets(self.datasets, "dataset id of")
            return
        if not self.data_types:
            raise CodatValidationError(
                "Wait for a ticket's datasets, or for data_types synced after synced_after."
            )
        self.data_types = normalize_data_types(self.data_types)
        if parse_timestamp(self.synced_after) is None:
            raise CodatValidationError(
                f"synced_after must be an ISO 8601 date-time when no ticket is given, got {shorten(self.synced_after)}."
            )

    @classmethod
    def from_ticket(cls, ticket: Any, data_types: Any = None) -> WaitSpec:
        """The wait for a ticket's datasets (checked in full), limited to ``data_types`` when given."""
        parsed = Ticket.parse(ticket)
        datasets = parsed.datasets
        if data_types is not None:
            wanted = normalize_data_types(data_types)
            missing = [t for t in wanted if t not in datasets]
            if missing:
                raise CodatValidationError(
                    f"The ticket has no dataset for {', '.join(missing)}; it covers "
                    f"{', '.join(sorted(datasets)) or 'nothing'}."
                )
            datasets = {t: datasets[t] for t in wanted}
        return cls(company_id=parsed.company_id, datasets=datasets)

    @property
    def types(self) -> list[str]:
        return sorted(self.datasets) if self.datasets is not None else sorted(set(self.data_types or []))

    @property
    def seed(self) -> str:
        """What identifies this wait (spreads the polls of waits that began together)."""
        return json.dumps(self.to_json(), sort_keys=True)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (plain strings, never the value types): the trigger's kwargs."""
        datasets = self.datasets
        return {
            "company_id": str(self.company_id),
            "datasets": {key: str(value) for key, value in datasets.items()}
            if datasets is not None
            else None,
            "data_types": list(self.data_types) if self.data_types is not None else None,
            "synced_after": self.synced_after,
        }
