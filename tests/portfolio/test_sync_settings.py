"""Sync settings: the simulator serves them as Codat's spec defines them, and the operator sets schedules
idempotently (one read, a write only when something differs), checking its input before any request."""

from __future__ import annotations

import httpx
import pytest
from jsonschema import Draft202012Validator

from airflow_provider_codat.errors import CodatError, CodatValidationError
from airflow_provider_codat.hooks.codat import CodatHook
from airflow_provider_codat.portfolio.sync_settings import CodatSyncSettingsOperator, plan_settings
from airflow_provider_codat.simulator.clock import fmt
from tests.simulator.test_conformance import PLATFORM, _pointer, _registry, assert_conforms

SETTINGS = "/companies/{companyId}/syncSettings"
DAILY = {"invoices": 24, "payments": 24, "bankTransactions": 24}


@pytest.fixture
def client(sim):
    with httpx.Client(base_url=sim.base_url, headers=sim.auth_header) as c:
        yield c


def _settings_calls(sim) -> list[tuple[str, str]]:
    return [
        (e["method"], e["path"]) for e in sim.control.request_log() if e["path"].endswith("/syncSettings")
    ]


def test_company_settings_conform_to_the_spec_and_a_post_is_kept(sim, client, company_id):
    answer = client.get(f"/companies/{company_id}/syncSettings")
    assert_conforms(PLATFORM, SETTINGS, "get", answer)
    assert answer.json()["overridesDefaults"] is False
    settings = answer.json()["settings"]
    for setting in settings:
        if setting["dataType"] == "invoices":
            setting["syncSchedule"] = 1
    body = {"companyId": company_id, "settings": settings, "overridesDefaults": True}
    # The body the provider sends is the spec's request body.
    schema = {"$ref": f"urn:{PLATFORM}#" + _pointer("paths", SETTINGS, "post", "requestBody", "content",
                                                    "application/json", "schema")}  # fmt: skip
    assert not list(Draft202012Validator(schema, registry=_registry(PLATFORM)).iter_errors(body))
    posted = client.post(f"/companies/{company_id}/syncSettings", json=body)
    assert posted.status_code == 204 and posted.content == b""
    after = client.get(f"/companies/{company_id}/syncSettings").json()
    assert after["overridesDefaults"] is True
    assert {s["dataType"]: s["syncSchedule"] for s in after["settings"]}["invoices"] == 1


@pytest.mark.parametrize(
    "change",
    [
        {"companyId": "00000000-0000-0000-0000-000000000000"},  # not the path's company
        {"settings": [{"dataType": "invoices", "syncSchedule": 24}]},  # required fields missing
        {"settings": [{"dataType": "nope", "fetchOnFirstLink": True, "syncSchedule": 1, "syncOrder": 0}]},
        {
            "settings": [
                {"dataType": "invoices", "fetchOnFirstLink": True, "syncSchedule": "1", "syncOrder": 0}
            ]
        },
        {"overridesDefaults": "yes"},
    ],
)
def test_bad_settings_are_refused_with_400_and_nothing_changes(client, company_id, change):
    body = {"companyId": company_id, "settings": [], "overridesDefaults": True, **change}
    answer = client.post(f"/companies/{company_id}/syncSettings", json=body)
    assert answer.status_code == 400
    assert_conforms(PLATFORM, SETTINGS, "post", answer)
    assert client.get(f"/companies/{company_id}/syncSettings").json()["overridesDefaults"] is False


def test_the_operator_writes_once_then_only_reads(sim, company_id):
    other = sim.control.linked_company_ids()[1]
    operator = CodatSyncSettingsOperator(
        task_id="s", company_ids=[company_id, other], schedules=DAILY | {"invoices": 1}
    )
    sim.control.reset_request_log()
    first = operator.execute({})
    assert sorted(first["written"]) == sorted([company_id, other]) and first["unchanged"] == []
    assert [m for m, _ in _settings_calls(sim)] == ["GET", "POST", "GET", "POST"]
    hook = CodatHook()
    schedules = {
        s["dataType"]: s["syncSchedule"] for s in hook.get_company_sync_settings(company_id)["settings"]
    }
    assert schedules["invoices"] == 1 and schedules["payments"] == 24 and schedules["bankTransactions"] == 24
    assert schedules["bills"] == 0  # left as it was: no schedule
    sim.control.reset_request_log()
    again = CodatSyncSettingsOperator(
        task_id="s", company_ids=[company_id, other], schedules=DAILY | {"invoices": 1}
    )
    second = again.execute({})
    assert second["written"] == [] and sorted(second["unchanged"]) == sorted([company_id, other])
    assert [m for m, _ in _settings_calls(sim)] == ["GET", "GET"]  # idempotent: no write


def test_every_setting_is_posted_so_types_left_alone_keep_theirs():
    current = {
        "settings": [
            {"dataType": "invoices", "fetchOnFirstLink": True, "syncSchedule": 24, "syncOrder": 0},
            {"dataType": "bills", "fetchOnFirstLink": True, "syncSchedule": 168, "syncOrder": 1},
        ]
    }
    plan = plan_settings(current, {"invoices": 1, "journalEntries": 24})
    assert plan.changes == {"invoices": (24, 1), "journalEntries": (None, 24)}
    assert {s["dataType"]: s["syncSchedule"] for s in plan.settings} == {
        "invoices": 1,
        "bills": 168,
        "journalEntries": 24,
    }
    assert plan_settings({"settings": plan.settings}, {"invoices": 1}).needed is False


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"company_ids": ["not-a-uuid"], "schedules": DAILY}, "company"),
        ({"company_ids": "0498e921-9b53-4396-a412-4f2f5983b0a2", "schedules": DAILY}, "list"),
        ({"company_ids": [], "schedules": {"notAType": 24}}, "notAType"),
        ({"company_ids": [], "schedules": {"invoices": 0.5}}, "whole hours"),
        ({"company_ids": [], "schedules": {}}, "non-empty"),
    ],
)
def test_bad_input_fails_before_any_request(sim, kwargs, words):
    sim.control.reset_request_log()
    with pytest.raises(CodatValidationError, match=words):
        CodatSyncSettingsOperator(task_id="s", **kwargs)
    assert sim.control.request_log() == []


def test_a_company_that_fails_fails_the_task_after_the_others_are_set(sim, company_id):
    missing = "0498e921-9b53-4396-a412-4f2f5983b0a2"
    operator = CodatSyncSettingsOperator(
        task_id="s", company_ids=[missing, company_id], schedules={"invoices": 1}
    )
    with pytest.raises(CodatError, match="1 of 2 companies"):
        operator.execute({})
    schedules = CodatHook().get_company_sync_settings(company_id)
    assert schedules["overridesDefaults"] is True


@pytest.mark.codat_simulator(scheduled_syncs=True, sync_seconds=60, change_fraction=0.5, companies=8)
def test_the_simulator_syncs_on_each_companys_schedule(sim):
    companies = sim.control.linked_company_ids()
    for company_id in companies:
        CodatHook().set_company_sync_settings(
            company_id,
            [{"dataType": "invoices", "fetchOnFirstLink": True, "syncSchedule": 24, "syncOrder": 0}],
        )
    state = sim.state
    before = set(state.datasets)
    sim.control.advance(24 * 3600 + 120)  # one day: every company's invoices sync once, at its own phase
    state.settle()
    scheduled = [d for key, d in state.datasets.items() if key not in before]
    assert sorted(d.company_id for d in scheduled) == sorted(companies)
    assert {d.data_type for d in scheduled} == {"invoices"}
    assert len({d.requested.hour for d in scheduled}) > 1  # spread over the day, not all at once
    changed = {d.company_id for d in scheduled if d.changes}
    assert 0 < len(changed) < len(companies)  # some companies have a quiet day
    status = CodatHook().get_data_status(companies[0])["invoices"]
    assert status["latestSuccessfulSyncId"] in {d.id for d in scheduled}
    # Company.lastSync follows the completed syncs.
    assert {state.companies[c]["lastSync"] for c in companies} == {fmt(d.finish_at) for d in scheduled}
