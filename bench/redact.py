"""What scrubbing server text costs (hooks/redact.py): building a key's pattern, and scrubbing the answers the hook
scrubs (a ``dataStatus``, a page of 1,000 companies), beside what decoding the same page costs.

Pages of records are not scrubbed, so the extract does not pay any of this.

Run: ``.venv/bin/python bench/redact.py`` (median of 3 rounds).
"""

from __future__ import annotations

import json
import statistics
import time
import uuid

from airflow_provider_codat.hooks.redact import Redactor

ROUNDS = 3


def median_ms(work, repeat: int) -> float:
    rounds = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(repeat):
            work()
        rounds.append((time.perf_counter() - started) / repeat)
    return statistics.median(rounds) * 1000


def main() -> None:
    redactor = Redactor("codat-simulator-key")
    data_status = {
        f"type{i}": {
            "dataType": f"type{i}",
            "currentStatus": "Complete",
            "lastSuccessfulSync": "2026-01-01T00:00:00.0000000Z",
            "latestSyncId": str(uuid.uuid4()),
            "latestSuccessfulSyncId": str(uuid.uuid4()),
        }
        for i in range(45)
    }
    page = json.dumps(
        {
            "results": [
                {
                    "id": str(uuid.uuid4()),
                    "name": f"Company {i} Ltd",
                    "platform": "Xero",
                    "redirect": f"https://link.codat.io/company/{i}",
                    "created": "2026-01-01T00:00:00Z",
                    "dataConnections": [
                        {"id": str(uuid.uuid4()), "status": "Linked", "sourceType": "Accounting"}
                    ],
                }
                for i in range(1000)
            ]
        }
    )
    decoded = json.loads(page)
    rows = [
        # A new key each time: the re module would hand back a pattern it compiled before.
        ("build one key's Redactor", median_ms(lambda: Redactor(uuid.uuid4().hex), 3)),
        ("scrub dataStatus (45 types)", median_ms(lambda: redactor.json(data_status), 100)),
        ("decode a 1,000-company page", median_ms(lambda: json.loads(page), 5)),
        ("scrub that decoded page", median_ms(lambda: redactor.json(decoded), 5)),
    ]
    print(f"{'operation':<32} {'ms':>8}")
    for name, ms in rows:
        print(f"{name:<32} {ms:>8.2f}")
    print(f"scrub / decode of the page: {rows[3][1] / rows[2][1]:.1f}x")


if __name__ == "__main__":
    main()
