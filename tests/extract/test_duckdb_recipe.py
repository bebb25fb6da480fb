"""The DuckDB recipe of docs/landing.md, taken from the page itself, rebuilds the current table from files a
real extract landed from the simulator: newest version of each record, deletes applied."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[2]
SECTION = "## Rebuild a data type's current table with DuckDB"


def recipe_sql() -> str:
    """The ```sql block of the recipe section of docs/landing.md."""
    text = (ROOT / "docs" / "landing.md").read_text()
    assert SECTION in text, f"docs/landing.md lost its section {SECTION!r}"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    (sql,) = re.findall(r"```sql\n(.*?)```", section, re.DOTALL)
    return sql


def _instant(value: str) -> datetime:
    """Codat's seven fractional digits cut to Python's six, as DuckDB's timestamps hold them."""
    match = re.fullmatch(r"(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?Z", value)
    fraction = (match.group(2) or "")[:6].ljust(6, "0")
    return datetime.fromisoformat(f"{match.group(1)}.{fraction}+00:00")


def test_the_recipe_rebuilds_the_current_table(codat_simulator, extract, tmp_path, monkeypatch):
    control = codat_simulator.control
    companies = control.linked_company_ids()[:2]
    destination = f"file://{tmp_path}/codat-data"
    for company_id in companies:
        extract(company_id, "invoices", "manual__2026-11-26T18:46:30.799815+00:00", destination=destination)
    for run_id in ("scheduled__2026-11-27T00:00:00+00:00", "scheduled__2026-11-28T00:00:00+00:00"):
        for company_id in companies:
            # Modified twice over the runs: only the newest version may survive; deleted ones must go.
            control.mutate(company_id, "invoices", created=3, modified=4, deleted=2)
            extract(company_id, "invoices", run_id, destination=destination)

    monkeypatch.chdir(tmp_path)  # the recipe reads its glob from the folder that holds the destination
    with duckdb.connect() as db:
        db.execute(recipe_sql())
        rows = db.execute(
            "SELECT CAST(_codat.companyId AS VARCHAR), CAST(id AS VARCHAR), modifiedDate FROM invoices"
        ).fetchall()
        landed = db.execute(
            "SELECT count(*) FROM read_json('codat-data/*/invoices/run=*/part-*.jsonl.gz', union_by_name = true)"
        ).fetchone()[0]

    table = {(company_id, record_id): modified.astimezone(UTC) for company_id, record_id, modified in rows}
    assert len(table) == len(rows)  # one row per record
    truth = {
        (company_id, record["id"]): _instant(record["modifiedDate"])
        for company_id in companies
        for record in control.records(company_id, "invoices")
        if not record["metadata"]["isDeleted"]
    }
    assert table == truth
    assert landed > len(rows)  # the landing held older versions and deleted records the recipe left out
