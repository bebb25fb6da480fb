"""The checked values: parsed once, trusted below, plain strings wherever they go."""

from __future__ import annotations

import json
import uuid

import pytest

from airflow_provider_codat.datatypes import get_data_type
from airflow_provider_codat.errors import CodatValidationError
from airflow_provider_codat.values import CompanyId, ConnectionId, DatasetId

ID = "c0a1b2c3-d4e5-4f60-8a7b-9c0d1e2f3a4b"


def test_a_canonical_id_parses_to_the_same_text():
    company = CompanyId.parse(ID.upper())
    assert company == ID and str(company) == ID and f"/companies/{company}" == f"/companies/{ID}"
    assert type(str(company)) is str
    assert json.loads(json.dumps({"company_id": company})) == {"company_id": ID}
    assert CompanyId.parse(uuid.UUID(ID)) == ID


def test_parsing_a_checked_value_returns_it_unchanged():
    company = CompanyId.parse(ID)
    assert CompanyId.parse(company) is company
    # Another kind of id is checked again, into its own type.
    connection = ConnectionId.parse(company)
    assert type(connection) is ConnectionId and connection == ID


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "../companies",
        f"{ID}/../x",
        f"{{{ID}}}",
        f"urn:uuid:{ID}",
        ID.replace("-", ""),
        f"{ID}%2F",
        None,
        7,
    ],
)
def test_anything_but_a_canonical_uuid_is_refused_naming_what_it_is(bad):
    with pytest.raises(CodatValidationError, match="company_id must be a UUID"):
        CompanyId.parse(bad)
    with pytest.raises(CodatValidationError, match="ticket dataset id of invoices must be a UUID"):
        DatasetId.parse(bad, "ticket dataset id of invoices")


def test_a_data_type_is_parsed_into_its_catalogue_entry_once():
    entry = get_data_type("invoices")
    assert get_data_type(entry) is entry
    with pytest.raises(CodatValidationError, match="Use one of"):
        get_data_type("invoicez")
