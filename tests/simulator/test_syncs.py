"""Queueing and syncs over real HTTP: status transitions, completion effects, errors, data/all."""

from __future__ import annotations

from datetime import UTC, date, timedelta

import pytest

from airflow_provider_codat.datatypes import CATALOGUE, fetch_on_first_link_types
from tests.moments import MOMENTS

IN_PROGRESS = (
    "DatasetAlreadyInProgressException: Cannot queue {} sync for {} as previous sync {} is still in progress"
)


def _status(client, company_id, data_type):
    return client.get(f"/companies/{company_id}/dataStatus").json()[data_type]


@pytest.mark.codat_simulator(sync_seconds=4)
def test_status_moves_queued_fetching_mapping_complete(sim, client, company_id):
    queued = client.post(f"/companies/{company_id}/data/queue/invoices")
    assert queued.status_code == 200
    dataset = queued.json()
    assert (dataset["status"], dataset["progress"], dataset["isCompleted"]) == ("Queued", 0, False)
    assert "completed" not in dataset
    seen = []
    for step in (1.2, 1.0, 2.0):
        sim.control.advance(step)
        one = client.get(f"/companies/{company_id}/data/history/{dataset['id']}").json()
        status = _status(client, company_id, "invoices")
        assert status["currentStatus"] == one["status"]
        assert status["latestSyncId"] == dataset["id"]
        seen.append(one["status"])
    assert seen == ["Fetching", "Mapping", "Complete"]
    assert one["isCompleted"] is True and one["isErrored"] is False and one["progress"] == 100
    assert status["latestSuccessfulSyncId"] == dataset["id"]
    assert status["lastSuccessfulSync"] == one["completed"]


@pytest.mark.codat_simulator(sync_seconds=4)
def test_previous_success_stays_in_data_status_while_running(client, company_id):
    before = _status(client, company_id, "bills")
    dataset = client.post(f"/companies/{company_id}/data/queue/bills").json()
    during = _status(client, company_id, "bills")
    assert during["currentStatus"] == "Queued"
    assert during["latestSyncId"] == dataset["id"]
    assert during["latestSuccessfulSyncId"] == before["latestSuccessfulSyncId"]
    assert during["lastSuccessfulSync"] == before["lastSuccessfulSync"]


@pytest.mark.codat_simulator(sync_seconds=0)
def test_completion_creates_modifies_and_deletes_records(sim, client, company_id):
    before = {r["id"]: r for r in sim.control.records(company_id, "invoices")}
    dataset = client.post(f"/companies/{company_id}/data/queue/invoices").json()
    assert dataset["status"] == "Complete"
    after = {r["id"]: r for r in sim.control.records(company_id, "invoices")}
    created = set(after) - set(before)
    changed = {i for i in before if after[i] != before[i]}
    deleted = {i for i in changed if after[i]["metadata"]["isDeleted"]}
    assert created and changed - deleted and deleted
    for record_id in created | changed:
        assert after[record_id]["modifiedDate"] == dataset["completed"]
    since = client.get(
        f"/companies/{company_id}/data/invoices", params={"query": f"modifiedDate>={dataset['completed']}"}
    ).json()
    assert {r["id"] for r in since["results"]} == created | changed
    assert _status(client, company_id, "invoices")["lastSuccessfulSync"] == dataset["completed"]


def test_effects_apply_once_however_often_observed(sim, client, company_id):
    dataset = client.post(f"/companies/{company_id}/data/queue/customers").json()
    sim.control.advance(3)
    first = sim.control.records(company_id, "customers")
    for _ in range(3):
        client.get(f"/companies/{company_id}/dataStatus")
        client.get(f"/companies/{company_id}/data/history/{dataset['id']}")
    assert sim.control.records(company_id, "customers") == first
    assert len(first) > 50


def test_in_progress_error_is_400_with_codat_text(client, company_id):
    dataset = client.post(f"/companies/{company_id}/data/queue/invoices").json()
    again = client.post(f"/companies/{company_id}/data/queue/invoices")
    assert again.status_code == 400
    assert again.json()["error"] == IN_PROGRESS.format("invoices", company_id, dataset["id"])


def test_in_progress_error_can_be_409(sim, client, company_id):
    sim.control.set_in_progress_status(409)
    dataset = client.post(f"/companies/{company_id}/data/queue/bills").json()
    again = client.post(f"/companies/{company_id}/data/queue/bills")
    assert again.status_code == 409
    assert dataset["id"] in again.json()["error"]
    sim.control.complete_running_syncs()
    assert client.post(f"/companies/{company_id}/data/queue/bills").status_code == 200


def test_read_before_first_sync_is_409_then_readable(sim, client, company_id):
    url = f"/companies/{company_id}/data/purchaseOrders"
    assert client.get(url).status_code == 409
    assert "purchaseOrders" not in client.get(f"/companies/{company_id}/dataStatus").json()
    client.post(f"/companies/{company_id}/data/queue/purchaseOrders")
    assert client.get(url).status_code == 409  # still syncing
    sim.control.complete_running_syncs()
    body = client.get(url).json()
    assert body["totalResults"] == 50
    assert _status(client, company_id, "purchaseOrders")["currentStatus"] == "Complete"


def test_data_all_queues_fetch_on_first_link_types(sim, client, company_id):
    before = client.get(f"/companies/{company_id}/data/history", params={"pageSize": 5000}).json()[
        "totalResults"
    ]
    response = client.post(f"/companies/{company_id}/data/all")
    assert response.status_code == 204 and response.content == b""
    history = client.get(f"/companies/{company_id}/data/history", params={"pageSize": 5000}).json()
    new = {d["dataType"] for d in history["results"][before:]}
    assert new == set(fetch_on_first_link_types())  # this company has every kind of connection
    assert "purchaseOrders" not in new
    # Running ones are skipped, not an error.
    assert client.post(f"/companies/{company_id}/data/all").status_code == 204


def test_sync_settings_mark_fetch_on_first_link(client):
    settings = client.get("/profile/syncSettings").json()["settings"]
    flags = {s["dataType"]: s["fetchOnFirstLink"] for s in settings}
    assert flags == {key: entry.fetch_on_first_link for key, entry in CATALOGUE.items()}
    assert flags["purchaseOrders"] is False and flags["invoices"] is True


@pytest.mark.codat_simulator(sync_seconds=0)
def test_deauthorized_connection_ends_in_auth_error(sim, client):
    company_id = sim.control.deauthorized_company_ids()[0]
    before = _status(client, company_id, "invoices")
    dataset = client.post(f"/companies/{company_id}/data/queue/invoices").json()
    assert dataset["status"] == "AuthError" and dataset["isErrored"] is True and dataset["errorMessage"]
    status = _status(client, company_id, "invoices")
    assert status["currentStatus"] == "AuthError"
    assert status["latestSuccessfulSyncId"] == before["latestSuccessfulSyncId"]
    # Data read before the connection lapsed stays readable.
    assert client.get(f"/companies/{company_id}/data/invoices").status_code == 200


@pytest.mark.codat_simulator(sync_seconds=0)
def test_type_without_a_connection_ends_not_supported(sim, client):
    # The second company has only an accounting connection.
    company_id = sim.control.deauthorized_company_ids()[0]
    dataset = client.post(f"/companies/{company_id}/data/queue/banking-accounts").json()
    assert dataset["status"] == "NotSupported"
    assert dataset["isErrored"] is False and dataset["isCompleted"] is False


@pytest.mark.codat_simulator(sync_seconds=0)
def test_fail_next_sync_with_chosen_status(sim, client, company_id):
    sim.control.fail_next_sync(company_id, "invoices", status="MapError", error_message="mapping broke")
    truth = sim.control.records(company_id, "invoices")
    dataset = client.post(f"/companies/{company_id}/data/queue/invoices").json()
    assert (dataset["status"], dataset["errorMessage"], dataset["isErrored"]) == (
        "MapError",
        "mapping broke",
        True,
    )
    assert sim.control.records(company_id, "invoices") == truth
    assert client.post(f"/companies/{company_id}/data/queue/invoices").json()["status"] == "Complete"


def test_queue_with_connection_id(sim, client, company_id):
    banking = sim.control.connection_id(company_id, "Banking")
    dataset = client.post(
        f"/companies/{company_id}/data/queue/banking-transactions", params={"connectionId": banking}
    ).json()
    assert dataset["connectionId"] == banking
    accounting = sim.control.connection_id(company_id)
    wrong = client.post(
        f"/companies/{company_id}/data/queue/banking-accounts", params={"connectionId": accounting}
    )
    sim.control.complete_running_syncs()
    assert (
        client.get(f"/companies/{company_id}/data/history/{wrong.json()['id']}").json()["status"]
        == "NotSupported"
    )


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/companies/00000000-0000-0000-0000-000000000000/data/queue/invoices", 404),
        ("/companies/{company}/data/queue/notAType", 404),
        ("/companies/{company}/data/queue/invoices?connectionId=00000000-0000-0000-0000-000000000000", 404),
        ("/companies/00000000-0000-0000-0000-000000000000/data/all", 404),
    ],
)
def test_queue_errors(client, company_id, path, status):
    response = client.post(path.format(company=company_id))
    assert response.status_code == status
    assert response.json()["statusCode"] == status


def test_history_lists_and_finds_datasets(client, company_id):
    dataset = client.post(f"/companies/{company_id}/data/queue/invoices").json()
    listed = client.get(
        f"/companies/{company_id}/data/history", params={"orderBy": "-requested", "pageSize": 1}
    ).json()
    assert listed["results"][0]["id"] == dataset["id"]
    assert (
        client.get(f"/companies/{company_id}/data/history/{dataset['id']}").json()["dataType"] == "invoices"
    )
    missing = client.get(f"/companies/{company_id}/data/history/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404


def test_mutate_records_a_completed_sync(sim, client, company_id):
    before = _status(client, company_id, "suppliers")
    summary = sim.control.mutate(company_id, "suppliers", created=2, modified=1, deleted=1)
    assert (len(summary["created"]), len(summary["modified"]), len(summary["deleted"])) == (2, 1, 1)
    after = _status(client, company_id, "suppliers")
    assert after["latestSuccessfulSyncId"] == summary["datasetId"] != before["latestSuccessfulSyncId"]
    assert after["lastSuccessfulSync"] == summary["modifiedDate"]


def test_same_seed_same_data_other_seed_other_data():
    from airflow_provider_codat.simulator import SimulatorState

    def invoices(seed):
        state = SimulatorState(seed=seed)
        company = next(iter(state.companies))
        return list(state.collection(company, CATALOGUE["invoices"]).records.values())

    assert invoices(1) == invoices(1)
    assert [r["id"] for r in invoices(1)] != [r["id"] for r in invoices(2)]


@pytest.mark.codat_simulator(sync_seconds=10)
def test_mutate_during_a_running_sync_keeps_it_latest(sim, client, company_id):
    running = client.post(f"/companies/{company_id}/data/queue/invoices").json()
    summary = sim.control.mutate(company_id, "invoices", modified=1)
    status = _status(client, company_id, "invoices")
    assert status["latestSyncId"] == running["id"] and status["currentStatus"] == "Queued"
    assert status["latestSuccessfulSyncId"] == summary["datasetId"]
    assert client.post(f"/companies/{company_id}/data/queue/invoices").status_code == 400


@pytest.mark.codat_simulator(sync_seconds=4)
@pytest.mark.parametrize("clock_at", MOMENTS, indirect=True)
def test_syncs_and_records_are_dated_by_the_clock_on_every_date(sim, client, company_id, clock_at):
    now = clock_at.astimezone(UTC)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"
    seeded = {r["id"] for r in sim.control.records(company_id, "invoices")}
    queued = client.post(f"/companies/{company_id}/data/queue/invoices")
    # The server thread's Clock reads time.time(), which time-machine stopped at the moment.
    assert queued.json()["requested"] == stamp == sim.control.now()
    sim.control.advance(4)  # over midnight, over the month or year end, across the DST hour
    later = now + timedelta(seconds=4)
    status = _status(client, company_id, "invoices")
    assert status["lastSuccessfulSync"] == later.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"
    records = client.get(
        f"/companies/{company_id}/data/invoices", params={"query": f"modifiedDate>={stamp}"}
    ).json()["results"]
    created = [r for r in records if r["id"] not in seeded]
    assert created and all(r["modifiedDate"] == status["lastSuccessfulSync"] for r in records)
    for record in created:
        # Business dates of a new record fall in the year up to the sync's (UTC) day.
        issued = date.fromisoformat(record["issueDate"][:10])
        assert later.date() - timedelta(days=365) <= issued <= later.date()
    # Codat's daily quota resets at the next 00:00 UTC.
    reset = client.get("/companies").headers["x-rate-limit-reset"]
    tomorrow = (later + timedelta(days=1)).date()  # the simulated clock moved on by 4 s
    assert reset == f"{tomorrow.isoformat()}T00:00:00Z"
