"""The extract under the faults real deployments meet, over real HTTP against the simulator.

Each test names a class of fault: records moving while pages are read, an order Codat does not promise,
envelopes that lie, values a float or msgspec would mangle. Every check compares what landed with the
simulator's own records, counting doubles by list and set sizes.
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from airflow_provider_codat.errors import CodatPagingError
from tests.extract.conftest import read_records, truth, versions


def landed_exactly_once(control, company: str, data_type: str, folder) -> list[tuple]:
    written = versions(read_records(folder))
    assert len(written) == len(set(written)), "a record version landed twice"
    missing = truth(control, company, data_type) - set(written)
    assert not missing, f"{len(missing)} current record versions never landed"
    return written


def test_records_restamped_while_paging_without_a_sync_are_not_lost(codat_simulator, company, extract, out):
    control = codat_simulator.control
    before = control.request_log()
    # After each of the first pages, Codat re-stamps three records already served; dataStatus stays put.
    for page in (1, 2, 3):
        control.add_fault("restamp_during_paging", path=r"/data/invoices$", after_page=page, count=3)
    extract(company, "invoices", "run1", page_size=6)
    assert control.request_log() != before
    landed_exactly_once(control, company, "invoices", out(company, "invoices"))
    # The next run reads only what moved since, and still nothing doubles.
    control.mutate(company, "invoices", modified=2)
    extract(company, "invoices", "run2", page_size=6)
    landed_exactly_once(control, company, "invoices", out(company, "invoices"))


def test_equal_dates_in_a_shifting_order_are_neither_lost_nor_doubled(
    codat_simulator, company, extract, out, monkeypatch
):
    control = codat_simulator.control
    instant = datetime(2026, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)
    monkeypatch.setattr(codat_simulator.state.clock, "now", lambda: instant)
    control.mutate(company, "bills", created=30, modified=20)  # 50 versions share one instant
    control.add_fault("unstable_order", path=r"/data/bills$", times=None)
    extract(company, "bills", "run1", page_size=7)
    landed_exactly_once(control, company, "bills", out(company, "bills"))
    control.mutate(company, "bills", created=3)  # more at the very same instant
    second = extract(company, "bills", "run2", page_size=7)
    assert second["records"] == 3
    landed_exactly_once(control, company, "bills", out(company, "bills"))


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("link_skip", "instead of page 2"),
        ("link_cycle", "instead of page 2"),
        ("empty_object", "without a results list"),
    ],
)
def test_an_envelope_that_lies_fails_the_run_and_commits_nothing(
    codat_simulator, company, extract, out, kind, message
):
    control = codat_simulator.control
    folder = out(company, "commerce-products")
    control.add_fault(kind, path=r"/data/commerce-products$", after_page=1, times=None)
    with pytest.raises(CodatPagingError, match=message):
        extract(company, "commerce-products", "run1", page_size=5)
    assert not (folder / "_state.json").exists()
    assert list(folder.glob("run=*/*.jsonl.gz")) == []


def test_an_empty_object_in_an_incremental_read_commits_nothing(codat_simulator, company, extract, out):
    control = codat_simulator.control
    extract(company, "invoices", "run1")
    state = (out(company, "invoices") / "_state.json").read_bytes()
    control.mutate(company, "invoices", created=2)
    control.add_fault("empty_object", path=r"/data/invoices$")
    with pytest.raises(CodatPagingError, match="without a results list"):
        extract(company, "invoices", "run2")
    assert (out(company, "invoices") / "_state.json").read_bytes() == state
    extract(company, "invoices", "run2")
    landed_exactly_once(control, company, "invoices", out(company, "invoices"))


def test_records_land_exactly_as_codat_sent_them(codat_simulator, company, extract, out):
    control = codat_simulator.control
    now = control.now()
    control.put_record(
        company,
        "invoices",
        {
            "id": "exact-1",
            "modifiedDate": now,
            "totalAmount": Decimal("98765432109876.54"),
            "amountDue": Decimal("0.1234567890123456789012345678"),
            "note": "a truncated emoji \ud83d from the source",
            "metadata": {"isDeleted": False},
        },
    )
    extract(company, "invoices", "run1")
    folder = out(company, "invoices")
    lines = [
        line
        for path in folder.glob("run=*/part-*.jsonl.gz")
        for line in gzip.decompress(path.read_bytes()).splitlines()
        if b'"exact-1"' in line
    ]
    assert len(lines) == 1
    assert b"98765432109876.54" in lines[0] and b"0.1234567890123456789012345678" in lines[0]
    assert b"\\ud83d" in lines[0]
    record = json.loads(lines[0], parse_float=Decimal)
    assert record["totalAmount"] == Decimal("98765432109876.54") and record["note"].startswith("a truncated")


def test_a_modified_date_that_is_no_date_fails_naming_the_record(codat_simulator, company, extract, out):
    control = codat_simulator.control
    control.put_record(
        company, "invoices", {"id": "broken-date", "modifiedDate": "9999-99-99T00:00:00Z", "metadata": {}}
    )
    with pytest.raises(Exception, match="broken-date") as info:
        extract(company, "invoices", "run1")
    assert len(str(info.value)) < 600
    assert not (out(company, "invoices") / "_state.json").exists()


def test_a_full_type_in_a_shifting_order_is_neither_lost_nor_doubled(codat_simulator, company, extract, out):
    control = codat_simulator.control
    control.add_fault("unstable_order", path=r"/data/commerce-products$", times=None)
    extract(company, "commerce-products", "run1", page_size=25)
    landed_exactly_once(control, company, "commerce-products", out(company, "commerce-products"))


def test_an_extract_told_the_type_synced_makes_no_data_status_call(codat_simulator, company, extract, out):
    control = codat_simulator.control
    extract(company, "invoices", "run1")
    control.mutate(company, "invoices", created=2, modified=1)
    control.reset_request_log()
    summary = extract(company, "invoices", "run2", known_synced="True")
    assert summary["records"] == 3
    assert not [r for r in control.request_log() if r["path"].endswith("/dataStatus")]
    landed_exactly_once(control, company, "invoices", out(company, "invoices"))
