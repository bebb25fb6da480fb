"""The query language and orderBy over real HTTP, checked against the simulator's own truth."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest


def _ids(client, company_id, data_type="invoices", **params) -> list[str]:
    response = client.get(f"/companies/{company_id}/data/{data_type}", params={"pageSize": 5000, **params})
    assert response.status_code == 200, response.text
    return [record["id"] for record in response.json()["results"]]


def _when(text: str) -> datetime:
    # Independent of the simulator's parser: trim the 7th fractional digit, default to UTC.
    text = text.rstrip("Z")
    if "." in text:
        head, fraction = text.split(".")
        text = f"{head}.{fraction[:6]}"
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def truth(sim, company_id) -> list[dict]:
    return sim.control.records(company_id, "invoices")


@pytest.mark.parametrize(
    ("op", "check"),
    [
        ("=", lambda a, b: a == b),
        ("!=", lambda a, b: a != b),
        (">", lambda a, b: a > b),
        (">=", lambda a, b: a >= b),
        ("<", lambda a, b: a < b),
        ("<=", lambda a, b: a <= b),
    ],
)
def test_number_operators(client, company_id, truth, op, check):
    pivot = sorted(r["totalAmount"] for r in truth)[20]
    expected = [r["id"] for r in truth if check(r["totalAmount"], pivot)]
    assert _ids(client, company_id, query=f"totalAmount{op}{pivot}") == expected
    assert expected  # the pivot splits the set, so each operator selects something


@pytest.mark.parametrize("op", [">", ">=", "<", "<=", "=", "!="])
def test_date_operators_compare_as_dates(client, company_id, truth, op):
    pivot = sorted(r["modifiedDate"] for r in truth)[25]
    checks = {
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        "=": lambda a, b: a == b,
        "!=": lambda a, b: a != b,
    }
    expected = [r["id"] for r in truth if checks[op](_when(r["modifiedDate"]), _when(pivot))]
    assert _ids(client, company_id, query=f"modifiedDate{op}{pivot}") == expected


def test_dates_in_other_formats_compare_as_the_same_instant(client, company_id, truth):
    pivot = sorted(r["modifiedDate"] for r in truth)[25]
    moment = _when(pivot)
    plain = moment.strftime("%Y-%m-%dT%H:%M:%SZ")  # same instant: the seeded ones have no fraction
    offset = moment.astimezone().strftime("%Y-%m-%dT%H:%M:%S%z")
    offset = offset[:-2] + ":" + offset[-2:]
    expected = _ids(client, company_id, query=f"modifiedDate>={pivot}")
    assert _ids(client, company_id, query=f"modifiedDate>={plain}") == expected
    assert _ids(client, company_id, query=f"modifiedDate>={offset}") == expected


def test_date_only_value(client, company_id, truth):
    # A day inside the seeded range, taken from the data: no year is assumed.
    pivot = sorted(r["issueDate"] for r in truth)[25][:10]
    expected = [r["id"] for r in truth if _when(r["issueDate"]) >= _when(pivot)]
    assert _ids(client, company_id, query=f"issueDate>={pivot}") == expected
    assert 0 < len(expected) < 50


def test_string_equality_and_contains(client, company_id, truth):
    assert _ids(client, company_id, query="currency=GBP") == [
        r["id"] for r in truth if r["currency"] == "GBP"
    ]
    assert _ids(client, company_id, query="currency!=GBP") == [
        r["id"] for r in truth if r["currency"] != "GBP"
    ]
    word = truth[0]["customerRef"]["companyName"].split()[0]
    expected = [r["id"] for r in truth if word.lower() in r["customerRef"]["companyName"].lower()]
    assert _ids(client, company_id, query=f"customerRef.companyName~{word.lower()}") == expected
    assert truth[0]["id"] in expected


def test_boolean_sub_property(sim, client, company_id):
    sim.control.mutate(company_id, "invoices", deleted=3)
    truth = sim.control.records(company_id, "invoices")
    live = [r["id"] for r in truth if not r["metadata"]["isDeleted"]]
    assert len(live) == 47
    assert _ids(client, company_id, query="metadata.isDeleted!=true") == live
    assert len(_ids(client, company_id, query="metadata.isDeleted=true")) == 3


def test_and_or_precedence_and_grouping(client, company_id, truth):
    grouped = "{currency=GBP||currency=USD}&&totalAmount>2000"
    flat = "currency=GBP||currency=USD&&totalAmount>2000"
    expect_grouped = [r["id"] for r in truth if r["currency"] in ("GBP", "USD") and r["totalAmount"] > 2000]
    expect_flat = [
        r["id"]
        for r in truth
        if r["currency"] == "GBP" or (r["currency"] == "USD" and r["totalAmount"] > 2000)
    ]
    assert expect_grouped != expect_flat
    assert _ids(client, company_id, query=grouped) == expect_grouped
    assert _ids(client, company_id, query=flat) == expect_flat
    nested = "{{currency=EUR}}||{totalAmount<500&&{currency=GBP||currency=USD}}"
    expect_nested = [
        r["id"]
        for r in truth
        if r["currency"] == "EUR" or (r["totalAmount"] < 500 and r["currency"] != "EUR")
    ]
    assert _ids(client, company_id, query=nested) == expect_nested


@pytest.mark.parametrize(
    "query",
    [
        "totalAmount",
        "totalAmount>>5",
        "{currency=GBP",
        "currency=GBP}",
        "currency=GBP&&",
        "=GBP",
        "totalAmount~12",
        "currency>GBP",
        "metadata.isDeleted>true",
        "totalAmount=abc",
        "a b=1",
    ],
)
def test_malformed_queries_are_400(client, company_id, query):
    response = client.get(f"/companies/{company_id}/data/invoices", params={"query": query})
    assert response.status_code == 400
    assert response.json()["error"].startswith("Error parsing query")


def test_query_length_limit(client, company_id):
    short = "currency=" + "X" * (2047 - len("currency="))
    assert len(short) == 2047
    assert client.get(f"/companies/{company_id}/data/invoices", params={"query": short}).status_code == 200
    long = short + "X"
    response = client.get(f"/companies/{company_id}/data/invoices", params={"query": long})
    assert response.status_code == 400


def test_order_by_ascending_descending_and_dotted(client, company_id):
    url = f"/companies/{company_id}/data/invoices"
    up = [r["totalAmount"] for r in client.get(url, params={"orderBy": "totalAmount"}).json()["results"]]
    down = [r["totalAmount"] for r in client.get(url, params={"orderBy": "-totalAmount"}).json()["results"]]
    assert up == sorted(up) and down == sorted(up, reverse=True)
    dates = [
        r["modifiedDate"] for r in client.get(url, params={"orderBy": "-modifiedDate"}).json()["results"]
    ]
    assert dates == sorted(dates, key=_when, reverse=True)
    names = [
        r["customerRef"]["companyName"].lower()
        for r in client.get(url, params={"orderBy": "customerRef.companyName"}).json()["results"]
    ]
    assert names == sorted(names)
    assert client.get(url, params={"orderBy": "-"}).status_code == 400


def test_history_is_queryable(client, company_id):
    body = client.get(f"/companies/{company_id}/data/history", params={"query": "dataType=invoices"}).json()
    assert body["totalResults"] == 1
    assert body["results"][0]["dataType"] == "invoices"
