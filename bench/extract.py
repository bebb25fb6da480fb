"""Benchmark: CodatExtractOperator against a bare httpx page loop, on the same local server.

    .venv/bin/python bench/extract.py                    # N = 100,000 and 1,000,000
    .venv/bin/python bench/extract.py --records 20000    # a quick look

For each N, one process serves N invoices as Codat pages (1000 records a page, ordered by ``modifiedDate``),
then, each in its own process so that neither warms the other:

- the *bare loop*: ``httpx.Client`` fetches every page and parses it (``response.json()``), nothing else; the
  ceiling for a Python client on httpx;
- the *extract*: ``CodatExtractOperator.execute`` (first run: every record, gzip JSON lines to ``file://``).

It prints records/s for both, their ratio and the extract's peak RSS (VmHWM). The server holds one compact
template per invoice shape and builds each page's bytes on request (ids and dates filled in), because the
simulator generates and filters records in Python and becomes the bottleneck at a million records; the bytes
it serves are ordinary Codat envelopes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

COMPANY = "5b3f6a2e-1c1d-4e7a-9f3e-0a1b2c3d4e5f"
PAGE_SIZE = 1000
TEMPLATES = 997  # a prime, so page contents do not repeat with the page size
ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)
API_KEY = "bench-key"


# -- the page server ------------------------------------------------------------------------------------
def _templates() -> list[tuple[bytes, bytes, bytes]]:
    """Invoice JSON split around the id and the modifiedDate, from the simulator's own record generator."""
    from airflow_provider_codat.datatypes import CATALOGUE
    from airflow_provider_codat.simulator import data as gen

    rng = random.Random(7)
    out = []
    for _ in range(TEMPLATES):
        record = gen.make_record(CATALOGUE["invoices"], rng, ANCHOR, synced_before=ANCHOR)
        record["id"], record["modifiedDate"] = "@ID@", "@MD@"
        text = json.dumps(record, separators=(",", ":")).encode()
        head, rest = text.split(b"@ID@")
        middle, tail = rest.split(b"@MD@")
        out.append((head, middle, tail))
    return out


def _record_id(index: int) -> bytes:
    return f"{index:08x}-0000-4000-8000-{index:012x}".encode()


def _modified(index: int) -> bytes:
    # Ten invoices share each millisecond: the watermark logic sees ties, as Codat's bulk writes make them.
    moment = ANCHOR + timedelta(milliseconds=index // 10)
    return (moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z").encode()


def _query_range(query: str | None, records: int) -> tuple[int, int]:
    """The indices ``[start, stop)`` of the records a ``modifiedDate`` query keeps (``>=``, ``>`` or ``=``):
    the extract reads by keyset, page 1 of ``modifiedDate>={the last instant read}`` each time."""
    if not query:
        return 0, records
    for op in (">=", ">", "="):
        if query.startswith("modifiedDate" + op):
            moment = datetime.fromisoformat(query[len("modifiedDate" + op) :][:26] + "+00:00")
            micros = (moment - ANCHOR) // timedelta(microseconds=1)
            first_ms = -(-micros // 1000)  # the first millisecond at or after the instant
            exact = micros % 1000 == 0
            if op == ">=":
                return min(first_ms * 10, records), records
            if op == ">":
                return min((first_ms + (1 if exact else 0)) * 10, records), records
            return (first_ms * 10, min(first_ms * 10 + 10, records)) if exact else (0, 0)
    raise ValueError(f"unsupported query {query!r}")


def serve(records: int, port_file: str) -> None:
    templates = _templates()
    status = json.dumps(
        {
            "invoices": {
                "dataType": "invoices",
                "currentStatus": "Complete",
                "lastSuccessfulSync": "2026-01-01T00:00:00.0000000Z",
                "latestSyncId": "00000000-0000-4000-8000-000000000001",
                "latestSuccessfulSyncId": "00000000-0000-4000-8000-000000000001",
            }
        }
    ).encode()
    pages = (records + PAGE_SIZE - 1) // PAGE_SIZE
    path = f"/companies/{COMPANY}/data/invoices"

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == f"/companies/{COMPANY}/dataStatus":
                return self._send(status)
            if url.path != path:
                return self._send(b'{"statusCode":404,"error":"not found"}', 404)
            params = parse_qs(url.query)
            page = int(params.get("page", ["1"])[0])
            size = int(params.get("pageSize", [str(PAGE_SIZE)])[0])
            low, high = _query_range(params.get("query", [None])[0], records)
            start, stop = low + (page - 1) * size, min(low + page * size, high)
            parts = []
            for index in range(start, stop):
                head, middle, tail = templates[index % TEMPLATES]
                parts.append(head + _record_id(index) + middle + _modified(index) + tail)
            links = {"self": {"href": path}, "current": {"href": f"{path}?page={page}&pageSize={size}"}}
            if stop < high:
                links["next"] = {"href": f"{path}?page={page + 1}&pageSize={size}"}
            envelope = json.dumps(
                {"pageNumber": page, "pageSize": size, "totalResults": high - low, "_links": links}
            ).encode()
            body = b'{"results":[' + b",".join(parts) + b"]," + envelope[1:]
            self._send(body)

        def _send(self, body: bytes, code: int = 200) -> None:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Path(port_file).write_text(str(server.server_address[1]))
    print(f"serving {records} invoices in {pages} pages on port {server.server_address[1]}", file=sys.stderr)
    server.serve_forever()


# -- the two clients ------------------------------------------------------------------------------------
def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bare(base_url: str) -> dict:
    import httpx

    headers = {"Authorization": "Basic bench"}
    count = pages = 0
    started = time.perf_counter()
    with httpx.Client(base_url=base_url, headers=headers, timeout=60) as client:
        page = 1
        while True:
            response = client.get(
                f"/companies/{COMPANY}/data/invoices",
                params={"page": page, "pageSize": PAGE_SIZE, "orderBy": "modifiedDate"},
            )
            response.raise_for_status()
            body = response.json()
            count += len(body["results"])
            pages += 1
            if "next" not in body["_links"]:
                break
            page += 1
    elapsed = time.perf_counter() - started
    return {"records": count, "pages": pages, "seconds": elapsed, "peak_rss_mb": _peak_rss_mb()}


def extract(base_url: str, destination: str) -> dict:
    os.environ["AIRFLOW_CONN_CODAT_DEFAULT"] = json.dumps(
        {"conn_type": "codat", "host": base_url, "password": API_KEY}
    )
    from airflow_provider_codat.operators.extract import CodatExtractOperator

    operator = CodatExtractOperator(
        task_id="bench",
        company_id=COMPANY,
        data_type="invoices",
        destination=destination,
        page_size=PAGE_SIZE,
    )
    started = time.perf_counter()
    summary = operator.execute({"run_id": "bench"})
    elapsed = time.perf_counter() - started
    size = sum(Path(urlsplit(f).path).stat().st_size for f in summary["files"])
    return {
        "records": summary["records"],
        "pages": summary["pages"],
        "files": len(summary["files"]),
        "bytes_written": size,
        "seconds": elapsed,
        "peak_rss_mb": _peak_rss_mb(),
    }


# -- orchestration --------------------------------------------------------------------------------------
def _child(*args: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, *args], check=True, capture_output=True, text=True, env=os.environ.copy()
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(records: int, rounds: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="codat-bench-") as tmp:
        port_file = os.path.join(tmp, "port")
        server = subprocess.Popen([sys.executable, __file__, "serve", str(records), port_file])
        try:
            deadline = time.monotonic() + 120
            while not os.path.exists(port_file) or not Path(port_file).read_text():
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the page server did not start")
                time.sleep(0.1)
            base_url = f"http://127.0.0.1:{Path(port_file).read_text()}"
            # Alternate the two and keep each one's best round: the machine is shared, and a slow round says
            # more about the neighbours than about the code.
            bares, extracts = [], []
            for round_ in range(rounds):
                bares.append(_child("bare", base_url))
                extracts.append(_child("extract", base_url, f"file://{tmp}/out{round_}"))
            bare_result = min(bares, key=lambda r: r["seconds"])
            extract_result = dict(min(extracts, key=lambda r: r["seconds"]))
            extract_result["peak_rss_mb"] = max(r["peak_rss_mb"] for r in extracts)
            extract_result["all_seconds"] = [round(r["seconds"], 2) for r in extracts]
            bare_result["all_seconds"] = [round(r["seconds"], 2) for r in bares]
        finally:
            server.terminate()
            server.wait()
    bare_rate = bare_result["records"] / bare_result["seconds"]
    extract_rate = extract_result["records"] / extract_result["seconds"]
    return {
        "records": records,
        "bare": bare_result,
        "extract": extract_result,
        "bare_records_per_s": round(bare_rate),
        "extract_records_per_s": round(extract_rate),
        "ratio": round(extract_rate / bare_rate, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--records", type=int, action="append", help="N (repeat for several); default 1e5 and 1e6"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating rounds per N; the best of each is kept"
    )
    args = parser.parse_args()
    results = [measure(n, args.rounds) for n in (args.records or [100_000, 1_000_000])]
    for result in results:
        e = result["extract"]
        print(
            f"N={result['records']:>9,}  bare {result['bare_records_per_s']:>8,} rec/s  "
            f"extract {result['extract_records_per_s']:>8,} rec/s  ratio {result['ratio']:.2f}  "
            f"extract peak RSS {e['peak_rss_mb']:.0f} MB  ({e['files']} files, "
            f"{e['bytes_written'] / 1e6:.0f} MB gzip, {e['seconds']:.1f} s)"
        )
    if len(results) > 1:
        low, high = results[0]["extract"]["peak_rss_mb"], results[-1]["extract"]["peak_rss_mb"]
        print(
            f"peak RSS growth from N={results[0]['records']:,} to N={results[-1]['records']:,}: {high / low - 1:+.1%}"
        )
    print(json.dumps(results))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve(int(sys.argv[2]), sys.argv[3])
    elif len(sys.argv) > 1 and sys.argv[1] == "bare":
        print(json.dumps(bare(sys.argv[2])))
    elif len(sys.argv) > 1 and sys.argv[1] == "extract":
        print(json.dumps(extract(sys.argv[2], sys.argv[3])))
    else:
        main()
