"""The checked values the provider carries: ids parsed once where they enter, trusted below.

A :class:`CompanyId` (likewise :class:`ConnectionId`, :class:`DatasetId`) is a ``str`` holding a canonical
lower-case UUID: it prints, compares and serialises (XCom, trigger kwargs) as the id itself. Parsing a value that
already is of the type returns it as it is, so a layer that must be sure of an id (the hook, which puts ids into
URL paths) re-checks nothing that came in checked. Data types are checked the same way, into the catalogue's
:class:`~airflow_provider_codat.datatypes.DataType` (:func:`~airflow_provider_codat.datatypes.get_data_type`).
"""

from __future__ import annotations

import uuid
from typing import Any, Self

from airflow_provider_codat.errors import CodatValidationError
from airflow_provider_codat.safe_repr import shorten

EXAMPLE_UUID = "c0a1b2c3-d4e5-4f60-8a7b-9c0d1e2f3a4b"


class CodatId(str):
    """A canonical lower-case UUID (the ``8-4-4-4-12`` hex form: no braces, no ``urn:uuid:``, no bare hex), so
    an id can never carry a path separator, a query or an encoded character."""

    __slots__ = ()
    label = "id"

    @classmethod
    def parse(cls, value: Any, what: str | None = None) -> Self:
        """``value`` as this type, or :class:`CodatValidationError` naming ``what`` (default: the type's label).

        :param value: a string or :class:`uuid.UUID` from a caller, a template or a payload.
        :param what: what the value is, named in the error (``"ticket company_id"``).
        """
        if type(value) is cls:
            return value
        if isinstance(value, uuid.UUID):
            return cls(str(value))
        what = what or cls.label
        if not isinstance(value, str):
            raise CodatValidationError(f"{what} must be a UUID string, got {type(value).__name__}.")
        try:
            parsed = str(uuid.UUID(value))
        except ValueError:
            parsed = None
        if parsed is None or parsed != value.lower():
            raise CodatValidationError(f"{what} must be a UUID like '{EXAMPLE_UUID}', got {shorten(value)}.")
        return cls(parsed)


class CompanyId(CodatId):
    """A Codat company id."""

    __slots__ = ()
    label = "company_id"


class ConnectionId(CodatId):
    """A Codat data connection id."""

    __slots__ = ()
    label = "connection_id"


class DatasetId(CodatId):
    """A Codat dataset (PullOperation) id: one sync of one data type."""

    __slots__ = ()
    label = "dataset_id"
