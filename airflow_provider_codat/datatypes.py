"""The Codat data-type catalogue: the one place that knows where and how each data type is read.

Every other module (hook, extract, sensor, simulator, example DAGs) asks this catalogue instead of
building paths or guessing capabilities. Facts come from Codat's OpenAPI specs (Platform and Lending).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from airflow_provider_codat.errors import UnknownDataTypeError
from airflow_provider_codat.safe_repr import shorten


class Scope(enum.StrEnum):
    """Where a data type's records live."""

    COMPANY = "company"
    CONNECTION = "connection"
    BANK_ACCOUNT = "bank_account"


class Kind(enum.StrEnum):
    """How an extract reads a data type."""

    INCREMENTAL = "incremental"  # paged, has modifiedDate: read what changed since the watermark
    FULL = "full"  # paged, no modifiedDate: read every page each run
    SNAPSHOT = "snapshot"  # one object (company info, a financial statement): written whole each run


@dataclass(frozen=True)
class DataType:
    """One Codat data type.

    :param key: the dataType key Codat uses in ``dataStatus`` and ``data/queue/{dataType}``.
    :param path: read path relative to the base URL; placeholders ``{company_id}``, ``{connection_id}``,
        ``{account_id}``.
    :param scope: company, connection or bank-account scoped.
    :param kind: incremental, full or snapshot read.
    :param has_deleted_flag: records carry ``metadata.isDeleted`` (accounting types), so
        ``metadata.isDeleted!=true`` is a valid filter.
    :param source_type: the connection ``sourceType`` that provides it (Accounting, Banking, Commerce).
    :param fetch_on_first_link: Codat's default sync setting; ``data/all`` queues these.
    :param report: a financial statement that needs ``periodLength`` and ``periodsToCompare``.
    """

    key: str
    path: str
    scope: Scope
    kind: Kind
    has_deleted_flag: bool = False
    source_type: str = "Accounting"
    fetch_on_first_link: bool = True
    report: bool = False

    @property
    def paged(self) -> bool:
        return self.kind is not Kind.SNAPSHOT

    @property
    def incremental(self) -> bool:
        return self.kind is Kind.INCREMENTAL

    def read_path(
        self, company_id: str, connection_id: str | None = None, account_id: str | None = None
    ) -> str:
        """Fill the path template; the caller has validated the ids already."""
        if self.scope is not Scope.COMPANY and not connection_id:
            raise ValueError(f"Data type {self.key!r} is read per connection: pass connection_id.")
        if self.scope is Scope.BANK_ACCOUNT and not account_id:
            raise ValueError(f"Data type {self.key!r} is read per bank account: pass account_id.")
        return self.path.format(company_id=company_id, connection_id=connection_id, account_id=account_id)


_COMPANY = "/companies/{company_id}/data/"
_CONNECTION = "/companies/{company_id}/connections/{connection_id}/data/"


def _company(key: str, path: str | None = None, **kw) -> DataType:
    return DataType(key, _COMPANY + (path or key), Scope.COMPANY, Kind.INCREMENTAL, True, **kw)


def _connection(key: str, kind: Kind = Kind.INCREMENTAL, deleted: bool = False, **kw) -> DataType:
    return DataType(key, _CONNECTION + key, Scope.CONNECTION, kind, deleted, **kw)


def _report(key: str) -> DataType:
    return DataType(key, _COMPANY + "financials/" + key, Scope.COMPANY, Kind.SNAPSHOT, report=True)


_ENTRIES: tuple[DataType, ...] = (
    # Accounting, company scoped, paged, with modifiedDate and metadata.isDeleted.
    _company("invoices"),
    _company("bills"),
    _company("customers"),
    _company("suppliers"),
    _company("journalEntries"),
    _company("journals"),
    _company("payments"),
    _company("billPayments"),
    _company("creditNotes"),
    _company("billCreditNotes"),
    _company("taxRates"),
    _company("items"),
    _company("paymentMethods"),
    _company("purchaseOrders", fetch_on_first_link=False),
    _company("salesOrders", fetch_on_first_link=False),
    _company("trackingCategories"),
    _company("chartOfAccounts", "accounts"),
    # Single objects without modifiedDate: written whole each run.
    DataType("company", _COMPANY + "info", Scope.COMPANY, Kind.SNAPSHOT),
    _report("balanceSheet"),
    _report("profitAndLoss"),
    _report("cashFlowStatement"),
    # Accounting, per connection.
    _connection("bankAccounts", deleted=True),
    _connection("accountTransactions", deleted=True),
    _connection("directCosts", deleted=True),
    _connection("directIncomes", deleted=True),
    _connection("transfers", deleted=True),
    _connection("itemReceipts", deleted=True, fetch_on_first_link=False),
    DataType(
        "bankTransactions",
        _CONNECTION + "bankAccounts/{account_id}/bankTransactions",
        Scope.BANK_ACCOUNT,
        Kind.INCREMENTAL,
    ),
    # Banking, per connection.
    _connection("banking-accounts", source_type="Banking"),
    _connection("banking-transactions", source_type="Banking"),
    _connection("banking-accountBalances", source_type="Banking"),
    _connection("banking-transactionCategories", source_type="Banking"),
    # Commerce, per connection. commerce-products and commerce-transactions carry no modifiedDate.
    _connection("commerce-customers", source_type="Commerce"),
    _connection("commerce-disputes", source_type="Commerce"),
    # The spec documents no query parameters for locations: read every page each run.
    _connection("commerce-locations", Kind.FULL, source_type="Commerce"),
    _connection("commerce-orders", source_type="Commerce"),
    _connection("commerce-paymentMethods", source_type="Commerce"),
    _connection("commerce-payments", source_type="Commerce"),
    _connection("commerce-productCategories", source_type="Commerce"),
    _connection("commerce-products", Kind.FULL, source_type="Commerce"),
    _connection("commerce-transactions", Kind.FULL, source_type="Commerce"),
    DataType(
        "commerce-companyInfo",
        _CONNECTION + "commerce-info",
        Scope.CONNECTION,
        Kind.SNAPSHOT,
        source_type="Commerce",
    ),
)

CATALOGUE: dict[str, DataType] = {entry.key: entry for entry in _ENTRIES}

# Types the extract reads through the bank accounts of a connection.
BANK_ACCOUNTS_KEY = "bankAccounts"


def get_data_type(key: str | DataType) -> DataType:
    """The catalogue entry of a Codat key (an entry is returned as it is), with an error that lists the valid
    keys.

    :raises UnknownDataTypeError: a key not in the catalogue (a :class:`CodatValidationError`).
    """
    if isinstance(key, DataType):
        return key
    try:
        return CATALOGUE[key]
    except (KeyError, TypeError):
        raise UnknownDataTypeError(
            f"Unknown Codat data type {shorten(key)}. Use one of: {', '.join(sorted(CATALOGUE))}."
        ) from None


# The transactional types read incrementally every day: the daily sync DAG's and the webhook portfolio path's.
DAILY_TYPES: tuple[str, ...] = (
    "invoices",
    "creditNotes",
    "payments",
    "bills",
    "billCreditNotes",
    "billPayments",
    "journalEntries",
    "accountTransactions",
    "bankTransactions",
)


def fetch_on_first_link_types() -> list[str]:
    """The keys that Codat's default sync settings queue on ``data/all``."""
    return [entry.key for entry in _ENTRIES if entry.fetch_on_first_link]
