"""Benchmark: merging a run into a current-state table vs rebuilding it with the DuckDB recipe of docs/extract.md.

    .venv/bin/python bench/tables.py                       # 10 million rows, 1 % changed
    .venv/bin/python bench/tables.py --rows 1000000        # a quicker look

It lays out, in a temporary folder (``--work`` to choose; about 1 GB per million rows):

- a landing of ``--rows`` invoices over ``--companies`` companies, as 24 monthly runs of gzip JSON lines (each
  record first landed in one of the 24 months), plus one run that changes 1 % of them (a tenth of those
  deleted): what 24 months of an extract leave behind;
- the Delta table of the 24 monthly runs, as ``merge_runs`` lays it out (partitioned by the month a record first
  landed), typed by the merge's own reader and appended month by month.

Then, each in its own process (time and peak RSS of that process), median of 3 rounds, each round running the
three steps one after the other (so that a busy machine weighs on all three alike):

- **merge, recent**: ``merge_runs`` of the change run (every company in one commit) into a fresh copy of the
  table, the changes falling in the two latest months, as accounting changes do (open invoices get paid);
- **merge, uniform**: the same, the changes spread over every month (every file is rewritten);
- **rebuild**: the DuckDB statement of docs/extract.md, taken from the page, over the whole landing.

It prints a Markdown table; ``bench/README.md`` records the figures.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MONTHS = [f"{2024 + (11 + i) // 12}-{(11 + i) % 12 + 1:02d}" for i in range(24)]  # 2024-12 .. 2026-11
CHANGE_RUN = "changes"
CHANGED_AT = "2026-11-30T12:00:00.1234567Z"


def _company(index: int) -> str:
    return f"{index:08x}-1111-4222-8333-444444444444"


def _record_id(company: int, number: int) -> str:
    return f"{company:08x}-0000-4000-8000-{number:012x}"


def _line(company: int, number: int, month: str, *, modified: str, due: str, deleted: bool = False) -> str:
    total = f"{(number * 7919) % 1000000 / 100:.2f}"
    return (
        f'{{"id":"{_record_id(company, number)}","invoiceNumber":"INV-{number}","issueDate":"{month}-03T00:00:00",'
        f'"dueDate":"{month}-28T00:00:00","currency":"GBP","totalAmount":{total},"amountDue":{due},'
        f'"status":"{"Paid" if due == "0" else "Submitted"}","modifiedDate":"{modified}",'
        f'"metadata":{{"isDeleted":{"true" if deleted else "false"}}},'
        f'"_codat":{{"companyId":"{_company(company)}","dataType":"invoices","extractedAt":"{modified[:19]}.000000Z"}}}}'
    )


def _write_part(folder: Path, run: str, lines: list[str]) -> str:
    run_folder = folder / f"run={run}"
    run_folder.mkdir(parents=True, exist_ok=True)
    part = run_folder / "part-00000.jsonl.gz"
    with gzip.open(part, "wt", compresslevel=1) as handle:
        handle.write("\n".join(lines) + "\n")
    summary = {"records": len(lines), "files": [f"file://{part}"]}
    (run_folder / "_manifest.json").write_text(json.dumps({"run_id": run, "summary": summary}))
    return f"file://{part}"


def _month_of(company: int, number: int) -> int:
    return (company * 31 + number * 17) % len(MONTHS)


def build_landing(landing: Path, rows: int, companies: int) -> None:
    """24 monthly runs per company: each record lands once, in the month it was created."""
    per_company = rows // companies
    for company in range(companies):
        folder = landing / _company(company) / "invoices"
        by_month: list[list[str]] = [[] for _ in MONTHS]
        for number in range(per_company):
            month_index = _month_of(company, number)
            month = MONTHS[month_index]
            line = _line(company, number, month, modified=f"{month}-15T09:00:00.0000000Z", due="100.00")
            by_month[month_index].append(line)
        for month_index, lines in enumerate(by_month):
            _write_part(folder, f"m{MONTHS[month_index]}", lines)


def changed_records(rows: int, companies: int, spread: str, seed: int = 7) -> dict[int, list[int]]:
    """``{company: [record numbers]}``: 1 % of the rows, from the two latest months or from every month."""
    per_company = rows // companies
    recent = set(range(len(MONTHS) - 2, len(MONTHS)))
    rng = random.Random(seed)
    chosen: dict[int, list[int]] = {}
    for company in range(companies):
        pool = range(per_company)
        if spread == "recent":
            pool = [n for n in pool if _month_of(company, n) in recent]
        chosen[company] = sorted(rng.sample(list(pool), per_company // 100))
    return chosen


def build_changes(landing: Path, chosen: dict[int, list[int]]) -> None:
    """The change run: each chosen record paid (or, one in ten, deleted), stamped at the end of the last month."""
    for company, numbers in chosen.items():
        lines = [
            _line(
                company, n, MONTHS[_month_of(company, n)], modified=CHANGED_AT, due="0", deleted=i % 10 == 0
            )
            for i, n in enumerate(numbers)
        ]
        _write_part(landing / _company(company) / "invoices", CHANGE_RUN, lines)


def build_table(landing: Path, table: Path) -> None:
    """The table of the 24 monthly runs, as merge_runs lays it out, written month by month from Arrow."""
    import pyarrow as pa
    from deltalake import write_deltalake

    from airflow_provider_codat.landing.parts import read_part_file
    from airflow_provider_codat.tables.commits import writer_properties
    from airflow_provider_codat.tables.part_reader import part_table

    for month in MONTHS:
        parts = [
            part_table("invoices", read_part_file(f"file://{part}"), f"run=m{month}", snapshot=False)
            for part in sorted(landing.glob(f"*/invoices/run=m{month}/part-*.jsonl.gz"))
        ]
        write_deltalake(
            str(table),
            pa.concat_tables(parts),
            partition_by=["_codat_month"],
            mode="append",
            writer_properties=writer_properties(),  # the files as the merges write them
        )


def recipe_sql() -> str:
    """The DuckDB statement of docs/extract.md's recipe section."""
    text = (ROOT / "docs" / "extract.md").read_text()
    section = text.split("## Rebuild a data type's current table with DuckDB", 1)[1].split("\n## ", 1)[0]
    (sql,) = re.findall(r"```sql\n(.*?)```", section, re.DOTALL)
    return sql


def measure(command: list[str], cwd: Path) -> tuple[float, float]:
    """(seconds of the step, peak RSS in MiB of its whole process) of one child process."""
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, text=True)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"{command} failed with status {status}")
    print(output.strip().splitlines()[-1], flush=True)
    (seconds,) = re.findall(r"^seconds=(\S+)$", output, re.MULTILINE)
    return float(seconds), usage.ru_maxrss / 1024


def _child(kind: str, work: Path, companies: int) -> None:
    """One measured step; prints the seconds it took (imports excluded: a worker has them loaded)."""
    if kind == "rebuild":
        import duckdb

        with duckdb.connect() as db:
            start = time.perf_counter()
            db.execute(recipe_sql())
            print(f"seconds={time.perf_counter() - start}", flush=True)
        return
    from airflow_provider_codat.tables.merge import merge_runs

    start = time.perf_counter()
    result = merge_runs(
        data_type="invoices",
        destination=f"file://{work}/codat-data",
        company_ids=[_company(c) for c in range(companies)],
        run_id=CHANGE_RUN,
        tables=f"file://{work}/tables-{kind}",
    )
    print(f"seconds={time.perf_counter() - start}", flush=True)
    print(
        f"merged: {result.inserted} inserted, {result.updated} updated, {result.deleted} deleted", flush=True
    )


def _merge_round(args: argparse.Namespace, work: Path, base: Path, spread: str) -> tuple[float, float]:
    """One measured merge of the change run ``spread`` into a fresh copy of the table."""
    landing = work / "codat-data"
    for part in landing.glob(f"*/invoices/run={CHANGE_RUN}"):
        shutil.rmtree(part)
    build_changes(landing, changed_records(args.rows, args.companies, spread))
    copy = work / f"tables-{spread}" / "invoices"
    shutil.rmtree(copy.parent, ignore_errors=True)
    shutil.copytree(base, copy)
    command = [
        sys.executable,
        __file__,
        "--child",
        spread,
        "--work",
        str(work),
        "--companies",
        str(args.companies),
    ]
    return measure(command, work)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--companies", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return _child(args.child, args.work, args.companies)
    work = args.work or Path(tempfile.mkdtemp(prefix="codat-tables-bench-"))
    base = work / "base" / "invoices"
    started = time.perf_counter()
    if not (work / "codat-data").exists():
        build_landing(work / "codat-data", args.rows, args.companies)
    if not base.exists():
        build_table(work / "codat-data", base)
    print(
        f"{args.rows:,} rows over {args.companies} companies in {work} ({time.perf_counter() - started:.0f} s)"
    )
    figures: dict[str, list[tuple[float, float]]] = {"recent": [], "uniform": [], "rebuild": []}
    for _ in range(args.rounds):  # the steps interleaved: each round's three see the same load
        for spread in ("recent", "uniform"):
            figures[spread].append(_merge_round(args, work, base, spread))
        figures["rebuild"].append(measure([sys.executable, __file__, "--child", "rebuild"], work))
    _report(args, figures)


def _report(args: argparse.Namespace, figures: dict[str, list[tuple[float, float]]]) -> None:
    rebuild_seconds = statistics.median(s for s, _ in figures["rebuild"])
    print(f"\n{args.rows:,} rows, 1 % changed, median of {args.rounds} rounds:\n")
    print("| step | time | peak RSS | rebuild / step |")
    print("|---|---:|---:|---:|")
    names = {"recent": "merge, changes in the 2 latest months", "uniform": "merge, changes in every month"}
    names["rebuild"] = "DuckDB rebuild (docs/extract.md)"
    for kind, rounds in figures.items():
        seconds = statistics.median(s for s, _ in rounds)
        rss = statistics.median(r for _, r in rounds)
        print(f"| {names[kind]} | {seconds:.1f} s | {rss:,.0f} MiB | {rebuild_seconds / seconds:.1f}x |")


if __name__ == "__main__":
    main()
