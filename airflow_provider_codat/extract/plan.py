"""What one extract reads: its scopes (company, connections, bank accounts) and the query of each read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_codat.datatypes import BANK_ACCOUNTS_KEY, DataType, Scope, get_data_type
from airflow_provider_codat.extract.watermark import query_value

if TYPE_CHECKING:
    from airflow_provider_codat.hooks.codat import CodatHook
    from airflow_provider_codat.values import CompanyId, ConnectionId

_BANK_ACCOUNTS = get_data_type(BANK_ACCOUNTS_KEY)


@dataclass(frozen=True)
class ReadScope:
    """One place a data type is read from.

    :param key: the key of the scope's cursor in the state (a plain ``str``): ``""`` for the company, the
        connection id, or ``"{connection_id}/{account_id}"`` for a bank account.
    :param connection_id: the connection, for connection- and bank-account-scoped types: the checked id the
        caller gave, or one of the ids Codat listed.
    :param account_id: the bank account, for bank transactions.
    """

    key: str = ""
    connection_id: ConnectionId | str | None = None
    account_id: str | None = None


def list_scopes(
    hook: CodatHook, company_id: CompanyId, data_type: DataType, connection_id: ConnectionId | None = None
) -> list[ReadScope]:
    """The scopes to read, in a stable order.

    Connection-scoped types are read from every connection of the company whose ``sourceType`` provides the
    type, whatever its status but ``PendingAuth`` (data read before a connection was deauthorised stays
    readable), or from ``connection_id`` alone when given; bank transactions from every bank account of those
    connections, deleted accounts included, since their transactions stay readable.

    :param hook: the Codat hook.
    :param company_id: the checked company id.
    :param data_type: the catalogue entry.
    :param connection_id: restrict to this (checked) connection.
    """
    if data_type.scope is Scope.COMPANY:
        return [ReadScope()]
    if connection_id:
        connection_ids = [connection_id]
    else:
        connection_ids = sorted(
            str(conn["id"])
            for conn in hook.list_connections(company_id)
            # A connection still waiting for its first authorisation has never held data.
            if _source_type(conn) == data_type.source_type.lower() and conn.get("status") != "PendingAuth"
        )
    if data_type.scope is Scope.CONNECTION:
        return [ReadScope(key=str(conn_id), connection_id=conn_id) for conn_id in connection_ids]
    scopes = []
    for conn_id in connection_ids:
        account_ids = sorted(
            {
                str(account["id"])
                for page in hook.iter_pages(company_id, _BANK_ACCOUNTS, connection_id=conn_id)
                for account in page
                if account.get("id")
            }
        )
        scopes.extend(
            ReadScope(key=f"{conn_id}/{account_id}", connection_id=conn_id, account_id=account_id)
            for account_id in account_ids
        )
    return scopes


def _source_type(connection: dict[str, Any]) -> str:
    return str(connection.get("sourceType") or "").lower()


def build_query(
    data_type: DataType, watermark: str | None, include_deleted: bool, *, op: str = ">="
) -> str | None:
    """The ``query`` of one read: ``modifiedDate{op}{watermark}`` and, on request, no deleted records.

    The watermark is sent back exactly as Codat wrote it (seven fractional digits), so the comparison is
    made at Codat's own precision.

    :param data_type: the catalogue entry.
    :param watermark: where the read starts; ``None`` reads everything.
    :param include_deleted: keep records carrying ``metadata.isDeleted: true``.
    :param op: ``>=`` (from the watermark), ``>`` (past it) or ``=`` (exactly at it).
    """
    conditions = []
    if data_type.incremental and watermark:
        conditions.append(f"modifiedDate{op}{query_value(watermark)}")
    if not include_deleted and data_type.has_deleted_flag:
        conditions.append("metadata.isDeleted!=true")
    return "&&".join(conditions) or None
