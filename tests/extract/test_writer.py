from __future__ import annotations

import gzip
import json
from decimal import Decimal

import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_codat.extract.writer import PartWriter
from airflow_provider_codat.hooks.exact_json import loads_exact
from airflow_provider_codat.landing.layout import staging_name


def read_lines(path) -> list[dict]:
    with gzip.open(path, "rt") as handle:
        return [json.loads(line) for line in handle]


@pytest.fixture
def folder(tmp_path):
    return ObjectStoragePath(f"file://{tmp_path}/run=1")


def test_rolls_at_page_boundaries_and_keeps_order(folder, tmp_path):
    pages = [[{"id": f"{p}-{i}", "n": i} for i in range(3)] for p in range(5)]
    with PartWriter(folder, max_records=6) as writer:
        for page in pages:
            writer.write(page)
        writer.write([])
    names = [p.name for p in writer.files]
    assert names == [staging_name("staging", n) for n in range(3)]
    assert names[0] == ".staging.part-00000.jsonl.gz.tmp"  # hidden, and no reader's glob for data
    written = [row for p in names for row in read_lines(tmp_path / "run=1" / p)]
    assert written == [record for page in pages for record in page]
    assert writer.records == 15


def test_rolls_by_uncompressed_size(folder, tmp_path):
    with PartWriter(folder, max_bytes=100) as writer:
        for i in range(4):
            writer.write([{"id": i, "pad": "x" * 120}])
    assert len(writer.files) == 4


def test_nothing_written_means_no_file(folder):
    with PartWriter(folder) as writer:
        writer.write([])
    assert writer.files == [] and not folder.exists()


def test_same_records_give_the_same_bytes(tmp_path):
    first = ObjectStoragePath(f"file://{tmp_path}/a")
    second = ObjectStoragePath(f"file://{tmp_path}/b")
    for target in (first, second):
        with PartWriter(target, token="t") as writer:
            writer.write([{"id": "1", "x": [1, 2]}])
    name = staging_name("t", 0)
    assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_records_land_exactly_as_codat_sent_them(folder, tmp_path):
    body = (
        b'{"results": [{"id": "1", "amount": 98765432109876.54, "rate": 0.1234567890123456789012345678,'
        b' "big": 123456789012345678901234567890, "exp": 1.5E+3, "note": "\\ud83d cut", "ok": "caf\\u00e9"},'
        b' {"id": "2", "amount": 1.10}]}'
    )
    page = loads_exact(body)["results"]
    with PartWriter(folder, token="t") as writer:
        writer.write(page)
    with gzip.open(tmp_path / "run=1" / staging_name("t", 0), "rb") as handle:
        lines = handle.read().splitlines()
    assert b"98765432109876.54" in lines[0] and b"0.1234567890123456789012345678" in lines[0]
    assert b"123456789012345678901234567890" in lines[0] and b"1.10" in lines[1]
    first = json.loads(lines[0], parse_float=Decimal)
    assert first["amount"] == Decimal("98765432109876.54") and first["exp"] == Decimal("1.5E+3")
    assert first["note"] == "\ud83d cut" and first["ok"] == "caf\u00e9"
    assert json.loads(lines[1])["id"] == "2"


def test_background_failure_reaches_the_caller(folder, monkeypatch):
    def refuse(self, mode="r", **kwargs):
        raise OSError("bucket refused the upload")

    monkeypatch.setattr(ObjectStoragePath, "open", refuse)
    writer = PartWriter(folder)
    with pytest.raises(OSError, match="refused"):
        for _ in range(20):
            writer.write([{"id": 1}])
        writer.close()


def test_prefetcher_hands_over_items_and_errors_in_order():
    from airflow_provider_codat.extract.prefetch import Prefetcher

    def source():
        yield [1]
        yield [2]
        raise RuntimeError("page 3 failed")

    seen = []
    with pytest.raises(RuntimeError, match="page 3"), Prefetcher(source()) as pages:
        for page in pages:
            seen.append(page)
    assert seen == [[1], [2]]


def test_prefetcher_stops_its_worker_when_the_reader_leaves_early():
    from airflow_provider_codat.extract.prefetch import Prefetcher

    produced = []

    def source():
        for n in range(1000):
            produced.append(n)
            yield n

    with Prefetcher(source(), depth=2) as pages:
        for page in pages:
            if page == 3:
                break
    assert len(produced) < 10
