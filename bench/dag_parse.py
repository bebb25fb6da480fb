"""How long each example DAG file takes to parse, beside a one-task DAG file parsed the same way.

Each file is parsed in a fresh interpreter in which Airflow's own imports are already warm (a reference file
parsed first), as in the DAG processor, which parses each file in a child of a process that has Airflow loaded:
the time is the file's own cost, the provider's imports included. The reference, a one-task DAG file, is timed
the same way, and the ratio to it cancels out most of the machine's speed.

    .venv/bin/python bench/dag_parse.py              # 3 rounds, medians
    .venv/bin/python bench/dag_parse.py --rounds 5

Target: every file under 0.5 s (well inside Airflow's 30 s ``dagbag_import_timeout``; the DAG processor
re-parses every file every 30 s by default).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

DAGS = Path(__file__).resolve().parents[1] / "dags"
REFERENCE = """
from airflow.sdk import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

with DAG("reference_one_task", schedule=None):
    EmptyOperator(task_id="only")
"""

_PARSE = """
import sys, time
from airflow.dag_processing.dagbag import DagBag
warm, path = sys.argv[1], sys.argv[2]
DagBag(dag_folder=warm)  # Airflow's own imports, as in a running DAG processor
started = time.perf_counter()
bag = DagBag(dag_folder=path)
seconds = time.perf_counter() - started
if bag.import_errors:
    raise SystemExit(f"{path}: {bag.import_errors}")
print(seconds)
"""


def parse_seconds(warm: Path, path: Path, home: str) -> float:
    """Seconds to parse ``path`` in a fresh interpreter warmed by parsing ``warm``."""
    env = {"AIRFLOW_HOME": home, "PATH": "/usr/bin:/bin", "AIRFLOW__CORE__LOAD_EXAMPLES": "false"}
    done = subprocess.run(
        [sys.executable, "-c", _PARSE, str(warm), str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    return float(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    files = sorted(DAGS.glob("*.py"))
    with tempfile.TemporaryDirectory(prefix="codat-bench-parse-") as home:
        warm, reference = Path(home) / "warm_dag.py", Path(home) / "reference_dag.py"
        warm.write_text(REFERENCE)
        reference.write_text(REFERENCE)
        rounds = [
            {str(path): parse_seconds(warm, path, home) for path in [reference, *files]}
            for _ in range(args.rounds)
        ]
    base = statistics.median(r[str(reference)] for r in rounds)
    print(f"{args.rounds} round(s), medians; reference (one EmptyOperator): {1000 * base:.1f} ms")
    print("| file | parse | ratio to reference | rounds |\n|---|---:|---:|---|")
    for path in files:
        each = [r[str(path)] for r in rounds]
        median = statistics.median(each)
        shown = " / ".join(f"{1000 * s:.0f}" for s in each)
        print(f"| {path.name} | {1000 * median:.0f} ms | {median / base:.1f} | {shown} ms |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
