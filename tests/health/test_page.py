"""The page through Airflow's own API server app (``create_app``, plugins mounted from the entry point) with
its real auth: anonymous gets nothing, a user sees only the companies of the DAGs they may read, an admin
sees them all; /api/v2/plugins still validates with the page's menu entry; what the page shows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from airflow_provider_codat.health.record import apply_report
from airflow_provider_codat.health.report import listed_connections
from tests.health.dag_limited_auth import OUTSIDER
from tests.health.reports import a_report

# One worker runs this module: its module-scoped fixture is costly to build (pytest-xdist --dist loadgroup).
pytestmark = pytest.mark.xdist_group("test_page")

LATE_CO = "11111111-1111-4111-8111-111111111111"
FAILED_CO = "22222222-2222-4222-8222-222222222222"
BROKEN_CO = "33333333-3333-4333-8333-333333333333"
FINE_CO = "44444444-4444-4444-8444-444444444444"
HIDDEN_CO = "55555555-5555-4555-8555-555555555555"


@pytest.fixture(scope="module")
def api(airflow_db):
    """Airflow's API server app, the simple auth manager with per-DAG permissions."""
    mp = pytest.MonkeyPatch()
    mp.setenv("AIRFLOW__CORE__AUTH_MANAGER", "tests.health.dag_limited_auth.DagLimitedAuthManager")
    mp.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", f"admin:admin,{OUTSIDER}:viewer")
    from airflow.api_fastapi import app as api_app

    api_app.purge_cached_app() if hasattr(api_app, "purge_cached_app") else None
    with TestClient(api_app.create_app(apps="core")) as client:  # started: the page's routes are added then
        yield client
    mp.undo()


def _token(client: TestClient, username: str, role: str) -> str:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return get_auth_manager().generate_jwt(SimpleAuthManagerUser(username=username, role=role))


def _add_dags(engine, schedules: dict[str, str]) -> None:
    from airflow.models.dag import DagModel
    from airflow.models.dagbundle import DagBundleModel
    from airflow.utils.session import create_session

    with create_session() as session:
        session.merge(DagBundleModel(name="health-tests"))
        session.flush()  # the DAGs name it
        for dag_id, summary in schedules.items():
            session.merge(DagModel(dag_id=dag_id, bundle_name="health-tests", timetable_summary=summary))


@pytest.fixture
def portfolio(health_engine):
    now = datetime.now(tz=UTC)
    _add_dags(
        health_engine, {"codat_sync_daily": "@daily", "codat_sync_hourly": "0 * * * *", "other": "@daily"}
    )
    landed = {"status": "extracted", "records": 10, "synced_at": now.isoformat()}
    with health_engine.begin() as connection:
        connection.execute(text("delete from codat_health_type"))
        fresh = a_report(
            {FINE_CO: {"invoices": landed}, BROKEN_CO: {"invoices": landed}, FAILED_CO: {"invoices": landed}},
            names={FINE_CO: "Fine Co", BROKEN_CO: "Broken Co", FAILED_CO: "Failed Co"},
            run_id="scheduled__today",
            minutes={str(int(now.timestamp() // 60)): 5},
            requests_per_minute=900,
            quota={
                "limit": 10000,
                "remaining": 120,
                "reserve": 100,
                "resets_at": now.timestamp() + 3600,
                "observed_at": now.timestamp(),
            },
        )
        apply_report(connection, fresh, at=now)
        apply_report(
            connection,
            a_report({LATE_CO: {"bills": landed}}, names={LATE_CO: "Late Co"}, dag_id="codat_sync_hourly"),
            at=now - timedelta(hours=3),
        )
        apply_report(
            connection,
            a_report(
                {FAILED_CO: {"payments": {"status": "failed", "error": "sync FetchError: Xero said no"}}},
                run_id="manual__boom",
                task_id="sync_company",
            ),
            at=now,
        )
        apply_report(
            connection,
            a_report(
                {HIDDEN_CO: {"invoices": landed}}, names={HIDDEN_CO: "Hidden Co"}, dag_id="not_registered"
            ),
            at=now,
        )
        # The DAG's company listing saw the broken connection (a report with no outcomes).
        listed = [
            {
                "id": BROKEN_CO,
                "name": "Broken Co",
                "dataConnections": [
                    {
                        "id": "2e9d2c44-f675-40ba-8049-353bfcb5e171",
                        "platformName": "Xero",
                        "status": "Deauthorized",
                    }
                ],
            },
            {
                "id": FINE_CO,
                "dataConnections": [{"id": "c-fine", "platformName": "Xero", "status": "Linked"}],
            },
        ]
        apply_report(
            connection, a_report({}, task_id="portfolio", connections=listed_connections(listed)), at=now
        )
    return health_engine


@pytest.mark.parametrize("path", ["/codat/health/fragment", "/codat/health/data"])
def test_anonymous_and_a_forged_token_get_nothing(api, portfolio, path):
    for headers, status in (({}, 401), ({"Authorization": "Bearer not-a-token"}, 403)):
        answer = api.get(path, headers=headers)
        assert answer.status_code == status
        assert "Co" not in answer.text and LATE_CO not in answer.text


def test_the_shell_carries_no_data_and_the_webhook_route_is_unchanged(api, portfolio):
    shell = api.get("/codat/health")
    assert shell.status_code == 200 and "/codat/health/fragment" in shell.text
    assert FINE_CO not in shell.text and "Fine Co" not in shell.text
    assert api.post("/codat/webhooks", content=b"{}").status_code == 400  # unsigned, as before


def test_a_user_without_the_dags_sees_no_company(api, portfolio):
    token = _token(api, OUTSIDER, "viewer")
    data = api.get("/codat/health/data", headers={"Authorization": f"Bearer {token}"}).json()
    assert data["companies"] == [] and data["matching"] == 0


def test_an_admin_sees_each_state_through_the_cookie_too(api, portfolio):
    api.cookies.set("_token", _token(api, "admin", "admin"))
    try:
        data = api.get("/codat/health/data").json()
        html = api.get("/codat/health/fragment").text
    finally:
        api.cookies.clear()
    states = {c["name"]: c["state"] for c in data["companies"]}
    # A company recorded by a DAG Airflow does not know is nobody's to read.
    assert states == {"Late Co": "Late", "Failed Co": "Error", "Broken Co": "Error", "Fine Co": "On time"}
    assert data["states"] == {"Error": 2, "Late": 1, "On time": 1}
    assert data["quota"]["remaining"] == 120 and data["requests_per_minute"] == 900
    # The deployment's figures count every DAG's landings (3 h ago may be yesterday).
    assert data["requests_last_minute"] == 5 and sum(n for _, n in data["per_day"][-2:]) == 50
    assert "sync FetchError: Xero said no" in html and "manual__boom" in html and "sync_company" in html
    assert "Deauthorized" in html and "scheduled__today" in html and "<svg" in html
    assert "120 of 10000 left" in html and "(nearly spent)" in html


@pytest.mark.parametrize(
    ("ask", "names"),
    [
        ({"filter": "stale"}, ["Failed Co", "Late Co"]),  # Failed Co's payments never landed
        ({"filter": "broken"}, ["Broken Co"]),
        ({"filter": "failed"}, ["Failed Co"]),
        ({"search": "fine"}, ["Fine Co"]),
        ({"search": LATE_CO[:8]}, ["Late Co"]),
        ({"sort": "name"}, ["Broken Co", "Failed Co", "Fine Co", "Late Co"]),
        ({"sort": "state"}, ["Broken Co", "Failed Co", "Late Co", "Fine Co"]),
    ],
)
def test_filters_search_and_sorting(api, portfolio, ask, names):
    token = _token(api, "admin", "admin")
    data = api.get("/codat/health/data", params=ask, headers={"Authorization": f"Bearer {token}"}).json()
    assert [c["name"] for c in data["companies"]] == names


def test_the_plugins_api_validates_with_the_menu_entry(api):
    token = _token(api, "admin", "admin")
    answer = api.get("/api/v2/plugins", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    (plugin,) = [p for p in answer.json()["plugins"] if p["name"] == "codat_webhooks"]
    (view,) = plugin["external_views"]
    assert (view["href"], view["url_route"], view["destination"]) == ("/codat/health", "codat-health", "nav")


@pytest.mark.parametrize(
    ("version", "in_local_storage"), [("3.1.0", True), ("3.1.1", False), ("3.2.2", False), ("3.3.2", False)]
)
def test_only_3_1_0_keeps_the_token_in_local_storage(version, in_local_storage):
    from airflow_provider_codat.version_compat import token_in_local_storage

    assert token_in_local_storage(version) is in_local_storage


def test_the_3_1_0_path_sends_the_local_storage_token_as_a_bearer_header(api, portfolio, monkeypatch):
    from airflow_provider_codat.health import routes

    monkeypatch.setattr(routes, "TOKEN_IN_LOCAL_STORAGE", True)
    script = api.get("/codat/health").text
    assert "const TOKEN_IN_LOCAL_STORAGE = true" in script and 'localStorage.getItem("token")' in script
    assert 'headers.Authorization = "Bearer " + t' in script
    # What that script sends (no cookie, only the header) is enough, as 3.1.0's API server reads only it.
    token = _token(api, "admin", "admin")
    answer = api.get("/codat/health/fragment", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200 and "Broken Co" in answer.text
    monkeypatch.setattr(routes, "TOKEN_IN_LOCAL_STORAGE", False)
    assert "const TOKEN_IN_LOCAL_STORAGE = false" in api.get("/codat/health").text


@pytest.mark.parametrize(
    "ask", [{}, {"filter": "stale"}, {"filter": "broken", "sort": "name"}, {"sort": "oldest"}]
)
def test_the_rows_across_dags_answer_as_the_rows_per_dag(portfolio, ask):
    """A user who may read every DAG that recorded a company reads one row per company; any other user the
    rows per DAG, grouped: both give the same page."""
    from airflow_provider_codat.health import query
    from airflow_provider_codat.health.query import Ask

    dags = {"codat_sync_daily", "codat_sync_hourly", "not_registered"}
    asked = Ask.of(**{"filter": "all", "search": "", "sort": "state", "page": 1, **ask})
    now = datetime.now(tz=UTC)
    with portfolio.connect() as connection:
        across = query.portfolio(connection, dags, asked, now=now)
        grouped = query._lines(connection, sorted(dags), now)
        original, query._every_line = query._every_line, lambda _now: grouped
        try:
            per_dag = query.portfolio(connection, dags, asked, now=now)
        finally:
            query._every_line = original

    def seen(found):
        lines = [
            (c.company_id, c.state, c.late, c.broken, c.failed, c.oldest_landing) for c in found["companies"]
        ]
        return lines, found["states"], found["matching"]

    assert seen(across) == seen(per_dag) and across["matching"] > 0
