"""Run folder names: safe for Spark/Hadoop paths and URLs, stable per run id, distinct across run ids."""

from __future__ import annotations

import re
from datetime import UTC, timedelta
from urllib.parse import quote, unquote_plus

import pytest

from airflow_provider_codat.landing.layout import run_folder_name
from tests.extract.conftest import run_records
from tests.moments import MOMENTS

SAFE_NAME = re.compile(r"^run=[A-Za-z0-9._-]+$")
AIRFLOW_RUN_IDS = [
    "manual__2026-11-26T18:46:30.799815+00:00",
    "scheduled__2026-11-26T00:00:00+00:00",
    "backfill__2026-11-26T00:00:00+00:00",
    "asset_triggered__2026-11-26T18:46:30+00:00",
    "manual__2026-11-26T18:46:30.799815-05:00",
    "my run/with a slash",
    "~weird=id@x",
]


@pytest.mark.parametrize("run_id", AIRFLOW_RUN_IDS)
def test_airflow_run_ids_become_names_spark_hadoop_and_urls_accept(run_id):
    name = run_folder_name(run_id)
    assert SAFE_NAME.match(name), name
    # Nothing a URL would change: quoting is the identity, and '+' can no longer turn into a space.
    assert quote(name, safe="=") == name and unquote_plus(name) == name
    assert run_folder_name(run_id) == name  # a retry of the run writes the same folder


def test_the_timestamp_stays_readable():
    name = run_folder_name("manual__2026-11-26T18:46:30.799815+00:00")
    assert name.startswith("run=manual__2026-11-26T18-46-30.799815_00-00-h")


@pytest.mark.parametrize("run_id", ["run1", "scheduled__2026-11-26", "backfill-3.a_b"])
def test_safe_run_ids_are_kept_as_they_are(run_id):
    assert run_folder_name(run_id) == f"run={run_id}"


def test_run_ids_that_map_to_the_same_characters_get_distinct_folders():
    # ':', '+', '~' and '_' all collapse in the mapping; the digest keeps the folders apart.
    ids = [
        "manual__2026-11-26T18:46:30+00:00",
        "manual__2026-11-26T18-46-30+00-00",
        "manual__2026-11-26T18-46-30_00-00",
        "manual__2026-11-26T18:46:30~00:00",
        "a+b",
        "a~b",
        "a_b",
    ]
    names = [run_folder_name(run_id) for run_id in ids]
    assert len(set(names)) == len(ids)


def test_a_safe_run_id_cannot_pose_as_another_ones_replaced_form():
    unsafe = "manual__2026-11-26T18:46:30+00:00"
    lookalike = run_folder_name(unsafe).removeprefix("run=")  # itself a safe run id
    assert run_folder_name(lookalike) != run_folder_name(unsafe)
    assert SAFE_NAME.match(run_folder_name(lookalike))


def test_an_empty_run_id_is_refused():
    with pytest.raises(ValueError, match="run id"):
        run_folder_name("")


def test_the_extract_lands_an_airflow_run_id_in_a_safe_folder(codat_simulator, company, extract, out):
    run_id = "manual__2026-11-26T18:46:30.799815+00:00"
    summary = extract(company, "invoices", run_id)
    folder = out(company, "invoices")
    (run_folder,) = [path for path in folder.iterdir() if path.is_dir()]
    assert run_folder.name == run_folder_name(run_id) and SAFE_NAME.match(run_folder.name)
    assert summary["files"] and all(
        ":" not in f.split("://", 1)[1] and "+" not in f for f in summary["files"]
    )
    assert len(run_records(folder, run_folder.name.removeprefix("run="))) == summary["records"]


@pytest.mark.parametrize("moment", MOMENTS)
def test_run_ids_around_every_moment_get_distinct_stable_folders(moment):
    utc = moment.astimezone(UTC)
    # Airflow's run ids carry the logical date; a moment and the second either side, in UTC and in the
    # moment's own offset (which differs across the DST switch, and twice within the repeated hour).
    run_ids = [
        f"{kind}__{stamp}"
        for kind in ("manual", "scheduled")
        for step in (-1, 0, 1)
        for stamp in (
            (utc + timedelta(seconds=step)).isoformat(),
            (utc + timedelta(seconds=step)).astimezone(moment.tzinfo).isoformat(),
        )
    ]
    names = {run_id: run_folder_name(run_id) for run_id in set(run_ids)}
    assert len(set(names.values())) == len(names)
    assert all(SAFE_NAME.match(name) and run_folder_name(run_id) == name for run_id, name in names.items())


def test_the_repeated_hour_gives_two_folders():
    first, second = "scheduled__2027-10-31T01:30:00+01:00", "scheduled__2027-10-31T01:30:00+00:00"
    assert run_folder_name(first) != run_folder_name(second)
