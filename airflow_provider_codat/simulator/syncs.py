"""Pull operations (datasets): their timeline and how Codat shows them.

A dataset's status is a function of the simulated clock: it sits in ``Queued`` for the first quarter of
its duration, ``Fetching`` for the second, ``Mapping`` for the second half, then ends in its outcome
(``Complete`` or a failure chosen when it was queued). Nothing runs in the background.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from airflow_provider_codat.datatypes import CATALOGUE, DataType, get_data_type
from airflow_provider_codat.simulator import data as gen
from airflow_provider_codat.simulator.clock import date_ticks, fmt
from airflow_provider_codat.simulator.collection import Collection
from airflow_provider_codat.simulator.error_bodies import SimulatorError
from airflow_provider_codat.sync.status import FAILED, FINISHED

# Codat's status vocabulary lives in one place; the simulator speaks the same one as the sensor.
SUCCESS = "Complete"
ERRORED = FAILED
FINAL = FINISHED


@dataclass
class Dataset:
    """One pull operation.

    :param id: dataset id.
    :param company_id: the company.
    :param connection_id: the connection it reads from.
    :param data_type: the catalogue key.
    :param requested: when it was queued.
    :param finish_at: when it reaches its outcome.
    :param outcome: the final status.
    :param error_message: the final error message, for failures.
    """

    id: str
    company_id: str
    connection_id: str
    data_type: str
    requested: datetime
    finish_at: datetime
    outcome: str = SUCCESS
    error_message: str | None = None
    applied: bool = field(default=False)
    # Whether completing changes records (a scheduled sync of a quiet day does not).
    changes: bool = True

    def finished(self, now: datetime) -> bool:
        return now >= self.finish_at

    def status(self, now: datetime) -> tuple[str, int]:
        """(status, progress) at ``now``."""
        if self.finished(now):
            return self.outcome, 100
        total = (self.finish_at - self.requested).total_seconds()
        fraction = (now - self.requested).total_seconds() / total if total > 0 else 1.0
        if fraction < 0.25:
            return "Queued", 0
        if fraction < 0.5:
            return "Fetching", int(20 + fraction * 40)
        return "Mapping", int(50 + fraction * 45)

    def as_json(self, now: datetime) -> dict:
        """The PullOperation body."""
        status, progress = self.status(now)
        body = {
            "id": self.id,
            "companyId": self.company_id,
            "connectionId": self.connection_id,
            "dataType": self.data_type,
            "status": status,
            "statusDescription": None,
            "errorMessage": None,
            "requested": fmt(self.requested),
            "progress": progress,
            "isCompleted": status == SUCCESS,
            "isErrored": status in ERRORED,
        }
        if status in FINAL:
            body["completed"] = fmt(self.finish_at)
            body["errorMessage"] = self.error_message
        return body


class SyncOperations:
    """Queueing, settling and reporting pull operations; mixed into :class:`SimulatorState`."""

    def _new_dataset(self, company_id: str, connection_id: str, key: str, requested: datetime) -> Dataset:
        dataset = Dataset(
            id=gen.new_id(self._ids),
            company_id=company_id,
            connection_id=connection_id,
            data_type=key,
            requested=requested,
            finish_at=requested + timedelta(seconds=self.sync_seconds),
        )
        self.datasets[dataset.id] = dataset
        self._status.setdefault((company_id, key), [dataset, None])[0] = dataset
        return dataset

    def _record_outcome(self, dataset: Dataset) -> None:
        if dataset.outcome == SUCCESS:
            self._status[(dataset.company_id, dataset.data_type)][1] = dataset
            company = self.companies.get(dataset.company_id)
            if company is not None:  # Company.lastSync: when its latest successful sync completed
                company["lastSync"] = fmt(max(dataset.finish_at, parse_fmt(company.get("lastSync"))))

    def settle(self) -> None:
        """Apply the effects of every sync that has finished by now, once, in finishing order."""
        with self.lock:
            self.schedules.start_due()
            if not self._pending:
                return
            now = self.clock.now()
            done = sorted((d for d in self._pending if d.finished(now)), key=lambda d: d.finish_at)
            for dataset in done:
                self._pending.remove(dataset)
                self._apply(dataset)

    def _apply(self, dataset: Dataset) -> None:
        dataset.applied = True
        if dataset.outcome != SUCCESS:
            self._notify(dataset, previous=None, changes=None)
            return
        data_type = CATALOGUE[dataset.data_type]
        previous = self.last_success(dataset.company_id, data_type.key)
        self._record_outcome(dataset)
        if previous is None:
            # A type's first sync brings its whole record set, written at completion time.
            for connection_id, account in self._scopes(dataset.company_id, data_type, dataset.connection_id):
                key = (dataset.company_id, data_type.key, connection_id, account)
                records = self._seed_records(data_type, key, dataset.finish_at, spread=False)
                self._collections[key] = Collection(records)
            self._notify(dataset, previous=None, changes={"created": [None]})
            return
        rng = self._mutations
        quiet = not dataset.changes
        changes = self.change_records(
            dataset.company_id,
            data_type,
            dataset.connection_id,
            dataset.finish_at,
            created=0 if quiet else rng.randint(1, 3),
            modified=0 if quiet else rng.randint(1, 3),
            deleted=0 if quiet else 1,
        )
        self._notify(dataset, previous=previous, changes=changes)

    def _notify(self, dataset: Dataset, previous: Dataset | None, changes: dict | None) -> None:
        """Tell the listeners (the webhook sender) that ``dataset`` finished; ``changes`` as
        :meth:`change_records` returns them (``None`` for a failed sync)."""
        for listener in self.sync_listeners:
            listener(dataset, previous, changes)

    def running_dataset(self, company_id: str, key: str) -> Dataset | None:
        entry = self._status.get((company_id, key))
        if entry and not entry[0].finished(self.clock.now()):
            return entry[0]
        return None

    def _sync_connection(self, company_id: str, data_type: DataType, connection_id: str | None) -> dict:
        """The connection a sync reads from: ``connection_id``, else the company's first one of the type's source
        type, else its first."""
        if connection_id:
            return self.connection(company_id, connection_id)
        return (
            self.default_connection(company_id, data_type) or self.company(company_id)["dataConnections"][0]
        )

    def queue(self, company_id: str, key: str, connection_id: str | None = None) -> Dataset:
        """Queue a sync; raise the in-progress error when one is running for this type.

        :param company_id: the company id.
        :param key: the catalogue key.
        :param connection_id: a connection; default: the company's first one of the type's source type.
        """
        with self.lock:
            self.settle()
            self.company(company_id)  # 404 for an unknown company, before the type is checked
            if key not in CATALOGUE:
                raise SimulatorError(404, f"Data type {key} not found or not supported")
            data_type = get_data_type(key)
            running = self.running_dataset(company_id, key)
            if running is not None:
                raise SimulatorError(
                    self.in_progress_status,
                    f"DatasetAlreadyInProgressException: Cannot queue {key} sync for {company_id} as "
                    f"previous sync {running.id} is still in progress",
                )
            connection = self._sync_connection(company_id, data_type, connection_id)
            dataset = self._new_dataset(company_id, connection["id"], key, self.clock.now())
            if connection["sourceType"] != data_type.source_type:
                dataset.outcome = "NotSupported"
                dataset.error_message = f"{key} is not supported by {connection['platformName']}"
            elif connection["status"] != "Linked":
                dataset.outcome = "AuthError"
                dataset.error_message = "The connection is no longer authorized: the company must re-link it."
            elif (company_id, key) in self._fail_next:
                dataset.outcome, dataset.error_message = self._fail_next.pop((company_id, key))
            self._pending.append(dataset)
            self.settle()
            return dataset

    def queue_all(self, company_id: str) -> list[Dataset]:
        """``data/all``: queue the fetch-on-first-link types the company's connections support.

        :param company_id: the company id.
        """
        with self.lock:
            company = self.company(company_id)
            queued = []
            for data_type in CATALOGUE.values():
                if not data_type.fetch_on_first_link or self.running_dataset(company_id, data_type.key):
                    continue
                for connection in self._connections_for(company, data_type):
                    queued.append(self.queue(company_id, data_type.key, connection["id"]))
                    break
            return queued

    def complete_now(self, company_id: str, key: str, connection_id: str | None = None) -> Dataset:
        """Record a sync of ``key`` that finished successfully this instant (its effects applied).

        :param company_id: the company id.
        :param key: the catalogue key.
        :param connection_id: a connection; default: the company's first one of the type's source type.
        """
        with self.lock:
            data_type = get_data_type(key)
            connection = self._sync_connection(company_id, data_type, connection_id)
            now = self.clock.now()
            running = self.running_dataset(company_id, key)
            dataset = self._new_dataset(company_id, connection["id"], key, now)
            dataset.finish_at = now
            dataset.applied = True
            self._record_outcome(dataset)
            if running is not None:
                # A sync still running stays the latest one: dataStatus and the in-progress check follow it.
                self._status[(company_id, key)][0] = running
            return dataset

    def mutate(
        self,
        company_id: str,
        key: str,
        created: int = 0,
        modified: int = 0,
        deleted: int = 0,
        connection_id: str | None = None,
    ) -> dict:
        """Change records now, as a sync completing this instant would, and record that sync.

        :param company_id: the company id.
        :param key: the catalogue key.
        :param created: records to create.
        :param modified: records to modify.
        :param deleted: records to delete (``metadata.isDeleted: true`` on accounting types).
        :param connection_id: a connection; default: the company's first one of the type's source type.
        """
        with self.lock:
            self.settle()
            self.company(company_id)
            data_type = get_data_type(key)
            previous = self.last_success(company_id, key)
            dataset = self.complete_now(company_id, key, connection_id)
            summary = self.change_records(
                company_id, data_type, dataset.connection_id, dataset.finish_at, created, modified, deleted
            )
            self._notify(dataset, previous, summary)
            summary["datasetId"] = dataset.id
            return summary

    def fail_next_sync(self, company_id: str, key: str, status: str, error_message: str) -> None:
        with self.lock:
            self._fail_next[(company_id, key)] = (status, error_message)

    def complete_running_syncs(self) -> None:
        with self.lock:
            now = self.clock.now()
            for dataset in self._pending:
                dataset.finish_at = min(dataset.finish_at, now)
            self.settle()

    def data_status(self, company_id: str) -> dict:
        with self.lock:
            self.settle()
            self.company(company_id)
            now = self.clock.now()
            body = {}
            for (owner, key), (latest, success) in self._status.items():
                if owner != company_id:
                    continue
                entry = {"dataType": key, "currentStatus": latest.status(now)[0], "latestSyncId": latest.id}
                if success is not None:
                    entry["lastSuccessfulSync"] = fmt(success.finish_at)
                    entry["latestSuccessfulSyncId"] = success.id
                body[key] = entry
            return body

    def history(self, company_id: str) -> list[dict]:
        with self.lock:
            self.settle()
            self.company(company_id)
            now = self.clock.now()
            return [d.as_json(now) for d in self.datasets.values() if d.company_id == company_id]

    def dataset(self, company_id: str, dataset_id: str) -> dict:
        with self.lock:
            self.settle()
            self.company(company_id)
            found = self.datasets.get(dataset_id)
            if found is None or found.company_id != company_id:
                raise SimulatorError(404, f"Dataset {dataset_id} not found")
            return found.as_json(self.clock.now())

    def last_success(self, company_id: str, key: str) -> Dataset | None:
        entry = self._status.get((company_id, key))
        return entry[1] if entry else None

    def readable(self, company_id: str, data_type: DataType) -> None:
        """Raise Codat's 409 for a type that has never finished a sync.

        :param company_id: the company id.
        :param data_type: the catalogue key (e.g. ``invoices``).
        """
        if self.last_success(company_id, data_type.key) is None:
            raise SimulatorError(
                409,
                f"Data of type {data_type.key} has not been synced for company {company_id}: "
                f"queue it with POST /companies/{company_id}/data/queue/{data_type.key} "
                "and wait for Complete.",
            )


def parse_fmt(value: str | None) -> datetime:
    """A timestamp the simulator wrote (:func:`fmt`) as an aware datetime; the epoch when there is none."""
    ticks = date_ticks(value) if value else None
    return datetime.fromtimestamp((ticks or 0) / 10_000_000, tz=UTC)
