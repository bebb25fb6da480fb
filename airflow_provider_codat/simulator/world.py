"""The simulator's world: companies, connections and record collections (pull operations: ``syncs``).

Everything is guarded by one re-entrant lock: the server thread answers requests while a test changes
the state through the control API. Record collections are generated on first use, each from its own
seeded random source, so state creation is cheap and the data does not depend on access order.
"""

from __future__ import annotations

import gc
import threading
from datetime import UTC, datetime, timedelta

from airflow_provider_codat.datatypes import CATALOGUE, DataType, Kind, Scope
from airflow_provider_codat.simulator import data as gen
from airflow_provider_codat.simulator.clock import Clock, fmt
from airflow_provider_codat.simulator.collection import Collection
from airflow_provider_codat.simulator.error_bodies import SimulatorError
from airflow_provider_codat.simulator.faults import Faults
from airflow_provider_codat.simulator.limits import (
    CODAT_CONCURRENT_PER_COMPANY,
    CODAT_REQUESTS_PER_MINUTE,
    LimitSettings,
    RateLimits,
)
from airflow_provider_codat.simulator.schedules import Schedules
from airflow_provider_codat.simulator.syncs import Dataset, SyncOperations

DEFAULT_API_KEY = "codat-simulator-key"
# Seeded data is dated before this moment, so the same seed gives the same records on any day. It is long past
# on any clock the simulator meets: a sync finishing "now" must write later modifiedDates than the seed did.
ANCHOR = datetime(2020, 1, 1, tzinfo=UTC)
BANK_ACCOUNTS_PER_CONNECTION = 3
_PLATFORMS = {
    "Accounting": ("Xero", "gbol"),
    "Banking": ("Plaid", "ugxp"),
    "Commerce": ("Shopify", "pdvj"),
}
_COMPANY_NAMES = (
    "Bluebell Bakery",
    "Granite Builders",
    "Harbour Coffee",
    "Juniper Florists",
    "Kestrel Cycles",
)


class SimulatorState(SyncOperations):
    """Everything the simulated Codat knows.

    :param seed: seeds every random choice.
    :param companies: how many companies.
    :param records: records per paged data type per company (or per connection, or per bank account).
    :param sync_seconds: how long a queued sync takes to finish; 0 finishes it at once.
    :param api_key: the only API key accepted.
    :param record_counts: per data type overrides of ``records`` (e.g. ``{"invoices": 100000}``).
    :param in_progress_status: HTTP status of the in-progress error, 400 (default) or 409.
    :param initial_syncs: give each company's fetch-on-first-link types one finished sync at start;
        ``False`` models freshly linked companies (every read answers 409 until a sync completes).
    :param requests_per_minute: requests per client IP in any 60 seconds (Codat: 1000); ``None`` or 0: no limit.
    :param daily_quota: requests per quota period; ``None``: Codat's ``1000 × (1 + linked companies)``.
    :param quota_period_seconds: ``None``: the quota resets at 00:00 UTC (simulated clock); N: every N seconds
        from now.
    :param concurrent_per_company: requests in flight at once per company (Codat: 10); ``None`` or 0: no limit.
    :param scheduled_syncs: sync each company's types on their ``syncSchedule`` (its own settings, else the
        client's daily one), as Codat does (``simulator/schedules.py``); off by default.
    :param change_fraction: the share of companies whose scheduled syncs of a day change records.
    """

    def __init__(
        self,
        seed: int = 1,
        companies: int = 5,
        records: int = 50,
        sync_seconds: float = 2.0,
        api_key: str = DEFAULT_API_KEY,
        record_counts: dict[str, int] | None = None,
        in_progress_status: int = 400,
        initial_syncs: bool = True,
        requests_per_minute: int | None = CODAT_REQUESTS_PER_MINUTE,
        daily_quota: int | None = None,
        quota_period_seconds: float | None = None,
        concurrent_per_company: int | None = CODAT_CONCURRENT_PER_COMPANY,
        scheduled_syncs: bool = False,
        change_fraction: float = 1.0,
    ) -> None:
        # Checked first: a bad limit fails before anything is generated.
        limits = LimitSettings(requests_per_minute, daily_quota, quota_period_seconds, concurrent_per_company)
        self.seed = seed
        self.records_per_type = records
        self.record_counts = dict(record_counts or {})
        self.sync_seconds = sync_seconds
        self.api_key = api_key
        self.in_progress_status = in_progress_status
        self.initial_syncs = initial_syncs
        self.lock = threading.RLock()
        self.clock = Clock()
        self.faults = Faults()
        self.request_log: list[dict] = []
        self._ids = gen.collection_rng(seed, "ids")
        self._mutations = gen.collection_rng(seed, "mutations")
        self.randomness = gen.collection_rng(seed, "faults")
        self._collections: dict[tuple, Collection] = {}
        self.datasets: dict[str, Dataset] = {}
        self._pending: list[Dataset] = []
        # (company_id, data_type) -> [latest dataset, latest successful dataset or None]
        self._status: dict[tuple[str, str], list] = {}
        self._fail_next: dict[tuple[str, str], tuple[str, str]] = {}
        # Called as listener(dataset, previous successful dataset, changes) when a sync finishes (webhooks).
        self.sync_listeners: list = []
        self.webhook_sender = None
        self.schedules = Schedules(self, enabled=scheduled_syncs, change_fraction=change_fraction)
        self.companies: dict[str, dict] = {}
        for index in range(companies):
            self._add_company(index)
        self.limits = RateLimits(limits, self.active_company_count, self.clock.timestamp())

    # -- companies and connections ------------------------------------------------------------------
    def _add_company(self, index: int) -> None:
        rng = gen.collection_rng(self.seed, "company", str(index))
        company_id = gen.new_id(rng)
        created = ANCHOR - timedelta(days=90 + index)
        name = _COMPANY_NAMES[index] if index < len(_COMPANY_NAMES) else f"{gen.company_name(rng)} {index}"
        kinds = (
            ["Accounting"]
            + (["Banking"] if index % 2 == 0 else [])
            + (["Commerce"] if index % 3 == 0 else [])
        )
        connections = []
        for kind in kinds:
            platform, key = _PLATFORMS[kind]
            connection_id = gen.new_id(rng)
            # The second company has re-authorisation pending: its accounting connection is Deauthorized.
            status = "Deauthorized" if index == 1 and kind == "Accounting" else "Linked"
            connections.append(
                {
                    "id": connection_id,
                    "integrationId": gen.new_id(rng),
                    "integrationKey": key,
                    "sourceId": gen.new_id(rng),
                    "sourceType": kind,
                    "platformName": platform,
                    "linkUrl": (
                        f"https://link-api.codat.io/companies/{company_id}/connections/{connection_id}/start"
                    ),
                    "status": status,
                    "lastSync": fmt(ANCHOR),
                    "created": fmt(created),
                    "dataConnectionErrors": [],
                }
            )
        company = {
            "id": company_id,
            "name": name,
            "description": f"Simulated company {index + 1}",
            "redirect": f"https://link.codat.io/company/{company_id}",
            "lastSync": fmt(ANCHOR),
            "created": fmt(created),
            "products": ["lending"],
            "tags": {},
            "dataConnections": connections,
        }
        self.companies[company_id] = company
        # Every fetch-on-first-link type the connections support had one initial sync, long finished.
        for data_type in CATALOGUE.values():
            if not data_type.fetch_on_first_link or not self.initial_syncs:
                continue
            for connection in self._connections_for(company, data_type):
                dataset = self._new_dataset(
                    company_id, connection["id"], data_type.key, ANCHOR - timedelta(minutes=5)
                )
                dataset.finish_at = ANCHOR
                dataset.applied = True
                self._record_outcome(dataset)

    def active_company_count(self) -> int:
        """Companies with a Linked connection: Codat's active connected companies, which size the quota."""
        return sum(
            1 for c in self.companies.values() if any(d["status"] == "Linked" for d in c["dataConnections"])
        )

    def company(self, company_id: str) -> dict:
        company = self.companies.get(company_id)
        if company is None:
            raise SimulatorError(404, f"Company {company_id} not found", service="ClientsApi")
        return company

    def connection(self, company_id: str, connection_id: str) -> dict:
        for connection in self.company(company_id)["dataConnections"]:
            if connection["id"] == connection_id:
                return connection
        raise SimulatorError(404, f"Data connection {connection_id} not found")

    @staticmethod
    def _connections_for(company: dict, data_type: DataType) -> list[dict]:
        return [c for c in company["dataConnections"] if c["sourceType"] == data_type.source_type]

    def default_connection(self, company_id: str, data_type: DataType) -> dict | None:
        found = self._connections_for(self.company(company_id), data_type)
        return found[0] if found else None

    # -- record collections ------------------------------------------------------------------------
    def _count(self, data_type: DataType) -> int:
        count = self.record_counts.get(data_type.key, self.records_per_type)
        if data_type.key == "bankAccounts":
            count = min(count, BANK_ACCOUNTS_PER_CONNECTION)
        return count

    def _ever_succeeded(self, company_id: str, key: str) -> bool:
        entry = self._status.get((company_id, key))
        return bool(entry and entry[1])

    def collection(
        self, company_id: str, data_type: DataType, connection_id: str = "", account_id: str = ""
    ) -> Collection:
        """The collection for this scope, generated on first use (empty if the type never synced).

        :param company_id: the company id.
        :param data_type: the catalogue key (e.g. ``invoices``).
        :param connection_id: a connection; default: the company's first one of the type's source type.
        :param account_id: the bank account id (``bankTransactions`` only).
        """
        key = (company_id, data_type.key, connection_id or "", account_id or "")
        found = self._collections.get(key)
        if found is None:
            records: list[dict] = []
            if self._ever_succeeded(company_id, data_type.key):
                records = self._seed_records(data_type, key, ANCHOR)
            found = self._collections[key] = Collection(records)
        return found

    def _seed_records(
        self, data_type: DataType, key: tuple, written_until: datetime, spread: bool = True
    ) -> list[dict]:
        rng = gen.collection_rng(self.seed, *key)
        count = self._count(data_type)
        step = 30 * 86400 // max(count, 1)
        records = []
        # Generating 100k nested dicts with the cyclic GC on costs several times more; nothing here is cyclic.
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            for index in range(count):
                # Spread over the 30 days before the initial sync, in order, so paging by date is realistic.
                written = (
                    written_until - timedelta(seconds=(count - index) * step) if spread else written_until
                )
                records.append(gen.make_record(data_type, rng, written, synced_before=written_until))
        finally:
            if was_enabled:
                gc.enable()
        return records

    def bank_account_ids(self, company_id: str, connection_id: str) -> list[str]:
        accounts = self.collection(company_id, CATALOGUE["bankAccounts"], connection_id)
        return list(accounts.records)

    def _scopes(self, company_id: str, data_type: DataType, connection_id: str) -> list[tuple[str, str]]:
        """Every (connection_id, account_id) a sync of this type on this connection writes to."""
        if data_type.scope is Scope.COMPANY:
            return [("", "")]
        if data_type.scope is Scope.CONNECTION:
            return [(connection_id, "")]
        return [(connection_id, account) for account in self.bank_account_ids(company_id, connection_id)]

    def change_records(
        self,
        company_id: str,
        data_type: DataType,
        connection_id: str,
        written: datetime,
        created: int,
        modified: int,
        deleted: int,
    ) -> dict:
        """Create, modify and delete records as a sync finishing at ``written`` would.

        :param company_id: the company id.
        :param data_type: the catalogue key (e.g. ``invoices``).
        :param connection_id: a connection; default: the company's first one of the type's source type.
        :param written: the new ``modifiedDate``.
        :param created: records to create.
        :param modified: records to modify.
        :param deleted: records to delete (``metadata.isDeleted: true`` on accounting types).
        """
        rng = self._mutations
        summary: dict = {"created": [], "modified": [], "deleted": [], "modifiedDate": fmt(written)}
        if data_type.kind is Kind.SNAPSHOT:
            return summary
        for scope_connection, account in self._scopes(company_id, data_type, connection_id):
            target = self.collection(company_id, data_type, scope_connection, account)
            live = [
                r["id"] for r in target.records.values() if not (r.get("metadata") or {}).get("isDeleted")
            ]
            chosen = rng.sample(live, min(len(live), modified + deleted))
            for record_id in chosen[:modified]:
                target.records[record_id] = gen.modify_record(
                    data_type, target.records[record_id], rng, written
                )
                summary["modified"].append(record_id)
            for record_id in chosen[modified:]:
                if data_type.has_deleted_flag:
                    gone = dict(target.records[record_id])
                    gone["metadata"] = {**(gone.get("metadata") or {}), "isDeleted": True}
                    if data_type.kind is Kind.INCREMENTAL:
                        gone["modifiedDate"] = fmt(written)
                    target.records[record_id] = gone
                else:
                    # Types without the deleted flag simply lose the record.
                    del target.records[record_id]
                summary["deleted"].append(record_id)
            for _ in range(created):
                record = gen.make_record(data_type, rng, written, synced_before=written)
                target.records[record["id"]] = record
                summary["created"].append(record["id"])
            target.changed()
        return summary

    def restamp(self, collection: Collection, record_ids: list[str]) -> None:
        """Give records a new ``modifiedDate`` (now) with nothing else changed and no dataset recorded, as
        Codat does when its data model changes.

        :param collection: where the records are.
        :param record_ids: the records to re-stamp.
        """
        written = fmt(self.clock.now())
        for record_id in record_ids:
            record = collection.records.get(record_id)
            if record is not None and "modifiedDate" in record:
                collection.records[record_id] = {**record, "modifiedDate": written}
        collection.changed()
