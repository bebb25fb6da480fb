"""End to end: `make airflow` (airflow standalone) in headless Chromium. Trigger is pressed on a Codat DAG with
the form's defaults (every company, the Variable's destination), the run succeeds, the grid names each company's
task after the company, the Assets page lists Codat's assets, and the Codat connection form shows its fields.

Opt-in: runs when CODAT_E2E=1 (CI sets it). Then Debian's chromium and chromium-driver must be installed:
a missing browser fails the test instead of skipping it. Screenshots land in test-artifacts/e2e/.
"""

from __future__ import annotations

import os
import re
import shutil
import time

import pytest

from tests.e2e.standalone import (
    ARTIFACTS,
    api_client,
    free_port,
    make_airflow,
    tail,
    until,
    wait_until_healthy,
)

DAG_ID = "codat_sync_hourly"

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module", autouse=True)
def _opt_in() -> None:
    if os.environ.get("CODAT_E2E") != "1":
        pytest.skip("the end-to-end UI test runs with CODAT_E2E=1 (CI sets it; it needs chromium)")
    missing = [name for name in ("chromium", "chromedriver") if shutil.which(name) is None]
    if missing:
        pytest.skip(
            f"CODAT_E2E=1 but {' and '.join(missing)} not found: apt-get install chromium chromium-driver "
            "(.ci/run installs them)"
        )


@pytest.fixture
def standalone(codat_simulator, tmp_path):
    """``tools/airflow_ui.py`` (what `make airflow` runs) on a free port, against the test's simulator."""
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


# The UI is a React app that re-renders while data arrives: an element found a moment ago can be replaced
# before it is read or clicked. Every look below finds its element afresh and counts a replaced (stale) or
# not-yet-rendered element as "not yet", never as a failure.
def _patient(driver, timeout: float = 90):
    from selenium.common.exceptions import (
        ElementClickInterceptedException,
        ElementNotInteractableException,
        NoSuchElementException,
        StaleElementReferenceException,
    )
    from selenium.webdriver.support.ui import WebDriverWait

    transient = (
        StaleElementReferenceException,
        NoSuchElementException,
        ElementClickInterceptedException,
        ElementNotInteractableException,
    )
    return WebDriverWait(driver, timeout, ignored_exceptions=transient)


def _wait_for_text(driver, text: str, timeout: float = 90, css: str = "body") -> str:
    """Wait until the element at ``css`` shows ``text``; return all its text, read in that same look."""
    from selenium.webdriver.common.by import By

    def shown(d):
        content = d.find_element(By.CSS_SELECTOR, css).text
        return content if text in content else False

    return _patient(driver, timeout).until(shown)


def _click(driver, xpath: str, timeout: float = 90) -> None:
    from selenium.webdriver.common.by import By

    def clicked(d):
        element = d.find_element(By.XPATH, xpath)
        if not (element.is_displayed() and element.is_enabled()):
            return False
        element.click()
        return True

    _patient(driver, timeout).until(clicked)


def _type(driver, css: str, keys: str, timeout: float = 30) -> None:
    from selenium.webdriver.common.by import By

    _patient(driver, timeout).until(lambda d: d.find_element(By.CSS_SELECTOR, css).send_keys(keys) or True)


@pytest.mark.codat_simulator(companies=3, records=10, sync_seconds=3)
def test_trigger_with_the_defaults_in_the_ui_then_see_names_assets_and_the_connection_form(
    standalone, codat_simulator, tmp_path
):
    base, proc, log_file = standalone
    api = api_client(base)

    wait_until_healthy(api, proc, log_file, DAG_ID)
    control = codat_simulator.control
    linked = control.linked_company_ids()
    names = {company["id"]: company["name"] for company in control.companies()}

    from selenium.webdriver.common.by import By

    driver = _chromium()
    try:
        # Open the home page first: Airflow 3.1 logs a browser in (every user an admin) through /auth/token/login,
        # which lands on the home page whatever page was asked for.
        driver.get(base)
        _wait_for_text(driver, "Dags")
        driver.get(f"{base}/dags/{DAG_ID}")
        _wait_for_text(driver, DAG_ID)
        _click(driver, "//button[normalize-space()='Trigger']")
        form = _wait_for_text(driver, "Run Parameters")
        driver.save_screenshot(str(ARTIFACTS / "trigger-form.png"))
        assert "Company ids" in form and "Destination" in form
        # With its own defaults the form is valid: the dialog's Trigger button (the page's last one) is enabled,
        # and pressing it (with "unpause on trigger", checked by default) runs the DAG.
        _click(driver, "(//button[normalize-space()='Trigger'])[last()]")

        def run_state():
            runs = api.get(f"/dags/{DAG_ID}/dagRuns", params={"run_type": "manual"}).json()["dag_runs"]
            if not runs:
                return None
            run = runs[-1]
            return (run["dag_run_id"], run["state"]) if run["state"] in ("success", "failed") else None

        run_id, state = until(
            "the run triggered in the UI to finish", run_state, 300, proc, log_file, every=3
        )
        assert state == "success", tail(log_file)
        run = api.get(f"/dags/{DAG_ID}/dagRuns/{run_id}").json()
        assert run["conf"] in ({}, None) or not run["conf"].get("company_ids")  # the defaults, untouched

        instances = api.get(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances").json()["task_instances"]
        syncs = [ti for ti in instances if ti["task_id"] == "codat_sync.sync" and ti["map_index"] >= 0]
        assert syncs and {ti["state"] for ti in syncs} == {"success"}, [
            (ti["map_index"], ti["state"]) for ti in syncs
        ]
        assert {ti["rendered_map_index"] for ti in syncs} == {names[c] for c in linked}
        landed = tmp_path / "airflow" / "codat-data"  # the codat_destination Variable of `make airflow`
        for company_id in linked:
            assert list((landed / company_id / "invoices").glob("run=*/part-*.jsonl.gz")), company_id

        driver.get(f"{base}/dags/{DAG_ID}/runs/{run_id}/tasks/codat_sync.sync/mapped")
        page = _wait_for_text(driver, names[linked[0]])
        assert all(names[c] in page for c in linked)
        time.sleep(1)  # let the grid settle before the picture
        driver.save_screenshot(str(ARTIFACTS / "grid-company-names.png"))

        driver.get(f"{base}/assets")
        page = _wait_for_text(driver, "codat://invoices")
        assert "codat://payments" in page
        driver.save_screenshot(str(ARTIFACTS / "assets.png"))

        driver.get(f"{base}/connections")
        _click(driver, "//button[normalize-space()='Add Connection']")
        _wait_for_text(driver, "Connection Type", css="[role=dialog]")
        _type(driver, "[role=dialog] [name=connection_id]", "codat_default")
        _type(driver, "[role=dialog] input[role=combobox]", "Codat")
        # Pick the provider's type from the list once it shows up.
        _click(driver, "//*[@role='option'][normalize-space()='Codat']")
        # The provider's form: relabelled standard fields, then (one section open at a time) its extras.
        form = _wait_for_text(driver, "API key", css="[role=dialog]")
        assert "Base URL" in form
        driver.save_screenshot(str(ARTIFACTS / "codat-connection-form.png"))
        _click(driver, "//*[@role='dialog']//button[normalize-space()='Extra Fields']")
        form = _wait_for_text(driver, "Portal URL", css="[role=dialog]")
        for label in ("Timeout (seconds)", "Max retries", "Portal URL"):
            assert label in form, label
        driver.save_screenshot(str(ARTIFACTS / "codat-connection-form-extra.png"))
    except Exception:
        driver.save_screenshot(str(ARTIFACTS / "failure.png"))
        (ARTIFACTS / "failure-page.txt").write_text(driver.find_element(By.TAG_NAME, "body").text)
        raise
    finally:
        driver.quit()
    # The company tasks handed over to the triggerer while Codat synced, instead of holding a worker slot
    # (standalone relays its components' output through threads, so give the lines a moment). The task's own
    # line, or the scheduler's record of it: Airflow 3.1's standalone does not relay task log lines.
    deferred = re.compile(
        r"Pausing task as DEFERRED.*task_id=codat_sync\.sync"
        rf"|TaskInstance Finished: dag_id={DAG_ID}, task_id=codat_sync\.sync, run_id={re.escape(run_id)},"
        r".*state=deferred"
    )
    until(
        "the deferral in the log",
        lambda: deferred.search(log_file.read_text(errors="replace")),
        20,
        proc,
        log_file,
        1,
    )
    for picture in ("grid-company-names.png", "assets.png"):
        assert (ARTIFACTS / picture).stat().st_size > 10_000
    assert (ARTIFACTS / "codat-connection-form.png").stat().st_size > 10_000
    assert (ARTIFACTS / "codat-connection-form-extra.png").stat().st_size > 10_000
