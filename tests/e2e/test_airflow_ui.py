"""End to end: `make airflow` (airflow standalone) in headless Chromium. Trigger is pressed on a Codat DAG with
the form's defaults (every company, the Variable's destination), the run succeeds, the grid names each company's
task after the company, the Assets page lists Codat's assets, and the Codat connection form shows its fields.
Then, on the same running Airflow, the portfolio health page (Browse > Codat portfolio health) shows a broken
connection, a company whose sync failed, a stale company and a nearly spent quota; anonymous requests get nothing.

Opt-in: runs when CODAT_E2E=1 (CI sets it). Then Debian's chromium and chromium-driver must be installed:
a missing browser fails the test instead of skipping it. Screenshots land in test-artifacts/e2e/.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
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
# The health page's screenshots go beside the others; CODAT_UPDATE_DOCS_IMAGES=1 writes them into docs/images
# instead (a test run leaves the tracked tree alone).
DOCS_IMAGES = (
    Path(__file__).resolve().parents[2] / "docs" / "images"
    if os.environ.get("CODAT_UPDATE_DOCS_IMAGES") == "1"
    else ARTIFACTS
)
FAILED_SYNC_MESSAGE = "Xero said no (end-to-end test)"

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


def _wait_listed(driver, url: str, text: str, timeout: float = 120) -> str:
    """Load ``url`` until it shows ``text`` (a reload each 15 s); return the page's text."""
    from selenium.common.exceptions import TimeoutException

    deadline = time.monotonic() + timeout
    while True:
        driver.get(url)
        try:
            return _wait_for_text(driver, text, timeout=15)
        except TimeoutException:
            if time.monotonic() > deadline:
                raise


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


# Four companies: the second one's seeded connection is Deauthorized, so three are linked and synced.
@pytest.mark.codat_simulator(companies=4, records=10, sync_seconds=3)
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

        # The list is ordered by the last event: a type whose event is recorded a moment later shows on a reload.
        _wait_listed(driver, f"{base}/assets", "codat://invoices")
        _wait_listed(driver, f"{base}/assets", "codat://payments")
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

        _health_page(driver, base, api, proc, log_file, codat_simulator.control, linked, names, tmp_path)
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


def _health_page(driver, base, api, proc, log_file, control, linked, names, tmp_path) -> None:
    """The portfolio health page on this same Airflow: one company's connection broken, one whose sync fails in
    a second run, one whose last landing is three hours old (older than the hourly DAG allows), and the daily
    quota nearly spent; the page, reached from the nav item, shows each."""
    from selenium.webdriver.common.by import By

    failing, broken, stale = linked[0], linked[1], linked[2]

    def no_run_active():  # the run unpausing made for the latest hour, too
        runs = api.get(f"/dags/{DAG_ID}/dagRuns", params={"state": ["queued", "running"]}).json()["dag_runs"]
        return not runs

    until("the DAG's runs to finish", no_run_active, 300, proc, log_file, every=3)
    control.set_connection_status(broken, control.connection_id(broken), "Deauthorized")
    control.fail_next_sync(failing, "invoices", error_message=FAILED_SYNC_MESSAGE)
    # 180 requests left: above the budget's reserve (100, so the second run may start) and, after it, within
    # twice the reserve, where the budget warns that the quota is nearly spent.
    control.set_rate_limits(daily_quota=control.rate_limits()["quota"]["used"] + 180)
    answer = api.post(
        f"/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": {"company_ids": [failing]}}
    )
    assert answer.status_code in (200, 201), answer.text
    second = answer.json()["dag_run_id"]

    def second_state():
        state = api.get(f"/dags/{DAG_ID}/dagRuns/{second}").json()["state"]
        return state if state in ("success", "failed") else None

    assert until("the failing run to end", second_state, 300, proc, log_file, every=3) == "failed"
    until("the DAG's runs to finish", no_run_active, 300, proc, log_file, every=3)
    # A running Airflow's clock cannot be moved: the stale company's reports are dated three hours back before
    # the page first reads them (the hourly DAG allows 1 h 45 min).
    aged = _age_reports(tmp_path / "airflow" / "airflow.db", stale, timedelta(hours=3))
    assert aged >= 1

    # Without a token the page's data answers as Airflow's own API does: `make airflow` runs the simple auth
    # manager with every user an admin, whose middleware signs every request in (3.2+); elsewhere 401 and no
    # data (the auth matrix with a real per-DAG auth manager: tests/health/test_page.py).
    own = httpx.get(f"{base}/api/v2/dags", timeout=30).status_code
    for path in ("/codat/health/data", "/codat/health/fragment"):
        anonymous = httpx.get(base + path, timeout=30)
        assert anonymous.status_code == own, (path, anonymous.status_code, own)
        if own in (401, 403):
            assert failing not in anonymous.text, path

    # The nav item's page (Browse > Codat portfolio health): the provider's page in Airflow's iframe, signed in
    # with the browser's own token.
    driver.get(f"{base}/plugin/codat-health")
    frame = _patient(driver, 60).until(
        lambda d: d.find_element(By.CSS_SELECTOR, "iframe[src*='/codat/health']")
    )
    driver.switch_to.frame(frame)
    page = _wait_for_text(driver, "companies match", timeout=60)
    rows = {
        c: driver.find_element(By.CSS_SELECTOR, f"tr[data-company='{c}']").text
        for c in (failing, broken, stale)
    }
    assert "Error" in rows[failing] and FAILED_SYNC_MESSAGE in rows[failing] and second in rows[failing]
    assert "Error" in rows[broken] and "Deauthorized" in rows[broken]
    assert rows[stale].startswith("Late") and "3 h ago" in rows[stale]
    assert all(names[c] in rows[c] for c in rows)
    quota = driver.find_element(By.CSS_SELECTOR, "[data-figure='Daily quota']").text
    assert "nearly spent" in quota, quota
    assert "Companies Error\n2" in page and "Companies Late\n1" in page
    driver.switch_to.default_content()
    DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(DOCS_IMAGES / "health-page.png"))
    driver.switch_to.frame(frame)
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element(By.CSS_SELECTOR, "select[name=filter]")).select_by_visible_text("failed")
    listed = _wait_for_text(driver, "1 companies match", timeout=30)
    assert FAILED_SYNC_MESSAGE in listed and names[stale] not in listed
    driver.execute_script("document.querySelector('tr[data-company]').scrollIntoView()")
    driver.switch_to.default_content()
    driver.save_screenshot(str(DOCS_IMAGES / "health-failed.png"))
    for picture in ("health-page.png", "health-failed.png"):
        assert (DOCS_IMAGES / picture).stat().st_size > 10_000


def _age_reports(database: Path, company_id: str, by: timedelta) -> int:
    """Date back every health report (XCom ``codat_health``) of ``company_id``'s own sync tasks by ``by``."""
    with sqlite3.connect(database, timeout=30) as connection:
        rows = connection.execute(
            "select id, value, timestamp from xcom where key = 'codat_health'"
            if _has_column(connection, "xcom", "id")
            else "select rowid, value, timestamp from xcom where key = 'codat_health'"
        ).fetchall()
        aged = 0
        for row_id, value, stamp in rows:
            report = json.loads(value)
            while isinstance(report, str):
                report = json.loads(report)
            if list(report.get("companies") or {}) != [company_id]:
                continue
            moved = datetime.fromisoformat(stamp) - by
            text = moved.isoformat(sep=" ") if "+" in stamp[10:] else moved.strftime("%Y-%m-%d %H:%M:%S.%f")
            column = "id" if _has_column(connection, "xcom", "id") else "rowid"
            connection.execute(f"update xcom set timestamp = ? where {column} = ?", (text, row_id))
            aged += 1
    return aged


def _has_column(connection, table: str, column: str) -> bool:
    return any(row[1] == column for row in connection.execute(f"pragma table_info({table})"))
