from __future__ import annotations

import json
import re

import pytest

from airflow_provider_codat.datatypes import CATALOGUE, Kind, Scope, UnknownDataTypeError, get_data_type
from tests.oas import load_spec

COMPANY_ID = "8a210b68-6988-11ed-a1eb-0242ac120002"
CONNECTION_ID = "2e9d2c44-f675-40ba-8049-353bfcb5e171"
ACCOUNT_ID = "d2a8f3c0-4b7c-4d5e-9f10-1a2b3c4d5e6f"


def _spec_path(data_type) -> str:
    """The catalogue's path written the way the spec writes its templates."""
    return (
        data_type.path.replace("{company_id}", "{companyId}")
        .replace("{connection_id}", "{connectionId}")
        .replace("{account_id}", "{accountId}")
    )


def test_every_key_is_a_codat_data_type():
    enum = set(
        load_spec("Codat-Platform.json")["components"]["schemas"]["DataStatus"]["properties"]["dataType"][
            "enum"
        ]
    )
    assert set(CATALOGUE) <= enum, sorted(set(CATALOGUE) - enum)


@pytest.mark.parametrize("key", sorted(CATALOGUE))
def test_read_path_and_kind_agree_with_the_lending_spec(key):
    spec = load_spec("Codat-Lending.json")
    data_type = CATALOGUE[key]
    operation = spec["paths"].get(_spec_path(data_type), {}).get("get")
    if operation is None:
        pytest.skip(f"the Lending spec has no read operation for {key} ({data_type.path})")
    response = json.dumps(
        _resolve(spec, operation["responses"]["200"]["content"]["application/json"]["schema"])
    )
    assert ("pageNumber" in response) == data_type.paged
    if data_type.incremental:
        assert "modifiedDate" in response
    if data_type.has_deleted_flag:
        assert "isDeleted" in response
    params = {p.get("name") or p["$ref"].rsplit("/", 1)[-1] for p in operation.get("parameters", [])}
    if data_type.incremental:
        assert {"page", "pageSize", "query", "orderBy"} <= params


def _resolve(spec: dict, node, seen: frozenset = frozenset()):
    """Inline every $ref, cutting cycles, so the record's properties can be seen."""
    if isinstance(node, dict):
        if "$ref" in node:
            ref = node["$ref"]
            if ref in seen:
                return None
            target = spec
            for part in ref.lstrip("#/").split("/"):
                part = part.replace("~1", "/")
                target = target[int(part)] if isinstance(target, list) else target[part]
            return _resolve(spec, target, seen | {ref})
        return {k: _resolve(spec, v, seen) for k, v in node.items() if k not in ("examples", "example")}
    if isinstance(node, list):
        return [_resolve(spec, item, seen) for item in node]
    return node


def test_read_paths_fill_in_ids_and_demand_the_scope_they_need():
    assert get_data_type("chartOfAccounts").read_path(COMPANY_ID) == f"/companies/{COMPANY_ID}/data/accounts"
    assert get_data_type("company").read_path(COMPANY_ID) == f"/companies/{COMPANY_ID}/data/info"
    assert get_data_type("bankTransactions").read_path(COMPANY_ID, CONNECTION_ID, ACCOUNT_ID) == (
        f"/companies/{COMPANY_ID}/connections/{CONNECTION_ID}/data/bankAccounts/{ACCOUNT_ID}/bankTransactions"
    )
    with pytest.raises(ValueError, match="per connection"):
        get_data_type("bankAccounts").read_path(COMPANY_ID)
    with pytest.raises(ValueError, match="per bank account"):
        get_data_type("bankTransactions").read_path(COMPANY_ID, CONNECTION_ID)


def test_snapshot_types_are_the_ones_without_modified_date():
    snapshots = {key for key, entry in CATALOGUE.items() if entry.kind is Kind.SNAPSHOT}
    assert {"company", "balanceSheet", "profitAndLoss", "cashFlowStatement"} <= snapshots
    assert all(CATALOGUE[key].report for key in ("balanceSheet", "profitAndLoss", "cashFlowStatement"))
    assert CATALOGUE["bankTransactions"].scope is Scope.BANK_ACCOUNT


@pytest.mark.parametrize("bad", ["invoice", "../invoices", "", None, "Invoices"])
def test_unknown_keys_are_refused_with_the_valid_list(bad):
    with pytest.raises(UnknownDataTypeError, match=re.escape("Use one of:")):
        get_data_type(bad)
