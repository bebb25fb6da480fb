"""End to end: `make airflow` (airflow standalone) runs a Codat DAG triggered through the REST API, and its UI
shows the DAG and the Codat connection form, in headless Chromium.

Opt-in: runs when CODAT_E2E=1 (CI sets it). Then Debian's chromium and chromium-driver must be installed:
a missing browser fails the test instead of skipping it. Screenshots land in test-artifacts/e2e/.
"""

from __future__ import annotations

import os
import re
import shutil
import time

import httpx
import pytest

from tests.e2e.standalone import ARTIFACTS, free_port, make_airflow, tail, until, wait_until_healthy

DAG_ID = "codat_sync_hourly"

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module", autouse=True)
def _opt_in() -> None:
    if os.environ.get("CODAT_E2E") != "1":
        pytest.skip("the end-to-end UI test runs with CODAT_E2E=1 (CI sets it; it needs chromium)")
    missing = [name for name in ("chromium", "chromedriver") if shutil.which(name) is None]
    if missing:
        pytest.fail(
            f"CODAT_E2E=1 but {' and '.join(missing)} not found: apt-get install chromium chromium-driver"
        )


@pytest.fixture
def standalone(codat_simulator, tmp_path):
    """`make airflow` on a free port, against the test's simulator."""
    with make_airflow(
        tmp_path / "airflow", free_port(), codat_simulator.connection_json, "airflow-standalone.log"
    ) as running:
        yield running


def _chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = shutil.which("chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1440,1000"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def _wait_for_text(driver, text: str, timeout: float = 30, css: str = "body"):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(lambda d: text in d.find_element(By.CSS_SELECTOR, css).text)
    return driver.find_element(By.CSS_SELECTOR, css)


@pytest.mark.codat_simulator(companies=3, records=10, sync_seconds=3)
def test_trigger_through_the_rest_api_and_see_the_dag_and_connection_form(
    standalone, codat_simulator, tmp_path
):
    base, proc, log_file = standalone
    api = httpx.Client(base_url=base + "/api/v2", timeout=30)

    wait_until_healthy(api, proc, log_file, DAG_ID)

    destination = tmp_path / "codat-data"
    response = api.post(
        f"/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": {"destination": str(destination)}}
    )
    assert response.status_code == 200, response.text
    run_id = response.json()["dag_run_id"]
    assert api.patch(f"/dags/{DAG_ID}", json={"is_paused": False}).status_code == 200

    def finished():
        state = api.get(f"/dags/{DAG_ID}/dagRuns/{run_id}").json()["state"]
        return state if state in ("success", "failed") else None

    assert until(f"run {run_id} to finish", finished, 300, proc, log_file, every=3) == "success", tail(
        log_file
    )
    instances = api.get(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances").json()["task_instances"]
    waits = [ti for ti in instances if ti["task_id"] == "codat_sync.wait"]
    assert waits and all(ti["state"] == "success" for ti in waits)
    linked = codat_simulator.control.linked_company_ids()
    assert {ti["rendered_map_index"] for ti in waits} == set(linked)
    for company_id in linked:
        assert list((destination / company_id / "invoices").glob("run=*/part-*.jsonl.gz")), company_id
    # The waits handed over to the triggerer instead of holding a worker slot (standalone relays its
    # components' output through threads, so give the lines a moment).
    deferred = re.compile(r"Pausing task as DEFERRED.*task_id=codat_sync\.wait")
    until(
        "the deferral in the log",
        lambda: deferred.search(log_file.read_text(errors="replace")),
        20,
        proc,
        log_file,
        1,
    )

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver = _chromium()
    wait = WebDriverWait(driver, 30)
    try:
        driver.get(f"{base}/dags/{DAG_ID}")
        page = _wait_for_text(driver, "Latest Run")
        assert DAG_ID in page.text and "codat_sync" in page.text
        time.sleep(1)  # let the charts settle before the picture
        driver.save_screenshot(str(ARTIFACTS / "dag-page.png"))

        driver.get(f"{base}/connections")
        wait.until(
            ec.element_to_be_clickable((By.XPATH, "//button[normalize-space()='Add Connection']"))
        ).click()
        dialog = _wait_for_text(driver, "Connection Type", css="[role=dialog]")
        dialog.find_element(By.NAME, "connection_id").send_keys("codat_default")
        dialog.find_element(By.CSS_SELECTOR, "input[role=combobox]").send_keys("Codat")
        # Pick the provider's type from the list once it shows up.
        wait.until(
            ec.element_to_be_clickable((By.XPATH, "//*[@role='option'][normalize-space()='Codat']"))
        ).click()
        # The provider's form: relabelled standard fields, then (one section open at a time) its extras.
        form = _wait_for_text(driver, "API key", css="[role=dialog]")
        assert "Base URL" in form.text
        driver.save_screenshot(str(ARTIFACTS / "codat-connection-form.png"))
        wait.until(
            ec.element_to_be_clickable(
                (By.XPATH, "//*[@role='dialog']//button[normalize-space()='Extra Fields']")
            )
        ).click()
        form = _wait_for_text(driver, "Portal URL", css="[role=dialog]")
        for label in ("Timeout (seconds)", "Max retries", "Portal URL"):
            assert label in form.text, label
        driver.save_screenshot(str(ARTIFACTS / "codat-connection-form-extra.png"))
    except Exception:
        driver.save_screenshot(str(ARTIFACTS / "failure.png"))
        (ARTIFACTS / "failure-page.txt").write_text(driver.find_element(By.TAG_NAME, "body").text)
        raise
    finally:
        driver.quit()
    assert (ARTIFACTS / "dag-page.png").stat().st_size > 10_000
    assert (ARTIFACTS / "codat-connection-form.png").stat().st_size > 10_000
    assert (ARTIFACTS / "codat-connection-form-extra.png").stat().st_size > 10_000
