"""CodatCompanyLink on the extract: built from the operator's rendered company id and the connection."""

from __future__ import annotations

import json

from airflow_provider_codat.links import CodatCompanyLink


def test_the_link_is_built_only_from_a_rendered_company_id(monkeypatch):
    from airflow_provider_codat.links import _url_from_operator
    from airflow_provider_codat.operators.extract import CodatExtractOperator

    monkeypatch.setenv(
        "AIRFLOW_CONN_CODAT_DEFAULT",
        json.dumps({"conn_type": "codat", "password": "k", "extra": {"portal_url": "https://portal.test/"}}),
    )
    company = "6f1c3c9e-6a2b-4a55-9a49-0a3b1c2d3e4f"
    extract = CodatExtractOperator(
        task_id="e", company_id=company, data_type="invoices", destination="file:///x"
    )
    assert _url_from_operator(extract) == f"https://portal.test/companies/{company}/summary"
    templated = CodatExtractOperator(
        task_id="t", company_id="{{ params.company }}", data_type="invoices", destination="file:///x"
    )
    assert _url_from_operator(templated) == ""  # not rendered: no link rather than a wrong one
    assert any(isinstance(link, CodatCompanyLink) for link in CodatExtractOperator.operator_extra_links)
