"""Arrow's JSON reader (the fast path) and the record-by-record path give the same rows; the fast path takes
the files it can, and hands over the others."""

from __future__ import annotations

import json
from decimal import Decimal

import pyarrow as pa
import pytest

from airflow_provider_codat.errors import CodatTableError
from airflow_provider_codat.tables import part_reader
from airflow_provider_codat.tables.part_reader import newest_table, part_table, run_table
from airflow_provider_codat.tables.rows import record_row, to_arrow
from tests.tables.conftest import _scopes

TYPES = ["invoices", "bills", "journalEntries", "bankTransactions", "banking-accounts", "commerce-orders"]


def _lines(control, company: str, data_type: str) -> tuple[bytes, list[dict]]:
    records = []
    for connection_id, account_id in _scopes(control, company, data_type):
        lineage = {"companyId": company, "dataType": data_type, "extractedAt": "2026-11-21T10:05:00.000000Z"}
        lineage |= {"connectionId": connection_id, "bankAccountId": account_id}
        for record in control.records(company, data_type, connection_id, account_id):
            records.append({**record, "_codat": {k: v for k, v in lineage.items() if v}})
    return ("\n".join(json.dumps(r) for r in records) + "\n").encode(), records


def _slow(data_type: str, data: bytes) -> list[dict]:
    records = [json.loads(line, parse_float=Decimal) for line in data.splitlines()]
    return to_arrow(
        data_type, [record_row(data_type, r, "run=1", snapshot=False) for r in records]
    ).to_pylist()


@pytest.mark.codat_simulator(companies=1, records=10)
@pytest.mark.parametrize("data_type", TYPES)
def test_both_paths_give_the_same_rows(codat_simulator, company, data_type):
    data, records = _lines(codat_simulator.control, company, data_type)
    assert part_reader._read_fast(data_type, data) is not None, (
        "the fast path refused the simulator's records"
    )
    quick = part_table(data_type, data, "run=1", snapshot=False).to_pylist()
    assert len(quick) == len(records) > 0
    assert sorted(quick, key=lambda r: r["_codat_key"]) == sorted(
        _slow(data_type, data), key=lambda r: r["_codat_key"]
    )


def test_an_unknown_field_or_a_misfit_goes_the_record_by_record_way():
    lineage = {"companyId": "c", "dataType": "invoices", "extractedAt": "2026-11-21T10:05:00Z"}
    base = {"id": "a", "modifiedDate": "2026-11-21T10:00:00.1234567Z", "totalAmount": 1.5, "_codat": lineage}
    wider = (json.dumps({**base, "addedLater": [1, 2]}) + "\n").encode()
    assert part_reader._read_fast("invoices", wider) is None
    assert part_table("invoices", wider, "run=1", snapshot=False).column("addedLater").to_pylist() == [
        "[1,2]"
    ]
    not_a_number = (json.dumps({**base, "totalAmount": "one and a half"}) + "\n").encode()
    assert part_reader._read_fast("invoices", not_a_number) is None
    as_text = (
        json.dumps({**base, "totalAmount": "1.50"}) + "\n"
    ).encode()  # both paths take a number as text
    assert part_table("invoices", as_text, "run=1", snapshot=False).to_pylist() == _slow("invoices", as_text)


def test_the_newest_version_of_each_key_wins_then_the_latest_extraction():
    def version(modified: str, extracted: str, amount: int) -> dict:
        lineage = {"companyId": "c", "dataType": "invoices", "extractedAt": extracted}
        return {"id": "a", "modifiedDate": modified, "totalAmount": amount, "_codat": lineage}

    versions = [
        version("2026-11-21T10:00:00.1234568Z", "2026-11-21T11:00:00Z", 2),  # the seventh digit decides
        version("2026-11-21T10:00:00.1234567Z", "2026-11-22T11:00:00Z", 1),
        version("2026-11-21T10:00:00.1234568Z", "2026-11-22T11:00:00Z", 3),  # same instant, landed later
    ]
    data = ("\n".join(json.dumps(v) for v in versions) + "\n").encode()
    [row] = newest_table(part_table("invoices", data, "run=1", snapshot=False)).to_pylist()
    assert row["totalAmount"] == 3 and row["_codat_modified"] == "2026-11-21T10:00:00.123456800Z"


def _invoice_line(raw_id: str, raw_amount: str) -> bytes:
    """One landed invoice with its id and amount written exactly as given (raw JSON)."""
    lineage = '{"companyId": "c", "dataType": "invoices", "extractedAt": "2026-11-21T10:05:00Z"}'
    fields = f'"modifiedDate": "2026-11-21T10:00:00Z", "totalAmount": {raw_amount}, "_codat": {lineage}'
    return ("{" + f'"id": {raw_id}, {fields}' + "}\n").encode()


@pytest.mark.parametrize(
    "amount",
    [
        "15000000000000000000000000",  # 26 integer digits: Arrow's reader would wrap it into a wrong value
        "1.5e25",
        '"1.5e25"',  # a number as text is read the same way
        '"-15000000000000000000000000"',
        "100000000000000000000",  # 21 digits: one past decimal(38, 18)
        "1e58",
        "9" * 60,  # past what even the wider read takes
        "-1e100",
    ],
)
def test_a_decimal_too_large_for_its_column_fails_naming_its_record_and_never_lands_wrong(amount):
    line = _invoice_line('"inv-9"', amount)
    assert part_reader._read_fast("invoices", line) is None
    with pytest.raises(
        CodatTableError, match=r"invoices: record 'inv-9' of company c has totalAmount=.*does not fit"
    ):
        part_table("invoices", line, "run=1", snapshot=False)


@pytest.mark.parametrize(
    ("amount", "exact"),
    [
        ("1.5e3", "1500"),
        ('"2.5E+2"', "250"),
        ("99999999999999999999.999999999999999999", "99999999999999999999.999999999999999999"),
    ],
)
def test_the_largest_decimals_and_exponents_land_digit_for_digit(amount, exact):
    # An id of hex digits with "1e5" in it is not a number: that file stays on the fast path.
    hex_id = '"1e5f0c2a-0000-4000-8000-00000000001e"'
    assert part_reader._read_fast("invoices", _invoice_line(hex_id, "12.5")) is not None
    [row] = part_table("invoices", _invoice_line(hex_id, amount), "run=1", snapshot=False).to_pylist()
    assert row["totalAmount"] == Decimal(exact)


def test_many_files_read_at_once_give_the_rows_of_each_file_and_a_misfit_still_names_its_record():
    files = [_invoice_line(f'"inv-{n}"', f"{n}.25") for n in range(3)]
    wider = _invoice_line('"inv-9"', "9.5").replace(b'"totalAmount"', b'"addedLater": 1, "totalAmount"')
    for batch in (files, [*files, wider]):  # one read for all; each file its own way
        together = run_table("invoices", batch, "run=1", snapshot=False).to_pylist()
        one_by_one = pa.concat_tables(
            [part_table("invoices", data, "run=1", snapshot=False) for data in batch],
            promote_options="default",
        ).to_pylist()
        assert sorted(together, key=str) == sorted(one_by_one, key=str)
        assert len(together) == len(batch)
    with pytest.raises(CodatTableError, match="record 'inv-7' of company c has totalAmount="):
        run_table("invoices", [*files, _invoice_line('"inv-7"', "1e30")], "run=1", snapshot=False)
