"""CodatListCompaniesOperator: the company ids to fan out over (``.expand(company_id=...)``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_codat.defaults import DEFAULT_CONN_ID
from airflow_provider_codat.operators.base import CodatHookMixin

if TYPE_CHECKING:
    from airflow.sdk import Context


CONNECTION_STATUSES = ("PendingAuth", "Linked", "Unlinked", "Deauthorized")


class CodatListCompaniesOperator(CodatHookMixin, BaseOperator):
    """Return the ids of the companies that match, over all pages, ready for ``.expand(company_id=...)``.

    :param query: a Codat query on companies, e.g. ``name~Acme`` (templated; build it with
        :mod:`airflow_provider_codat.query`).
    :param tags: a Codat tags filter, e.g. ``region=uk`` (templated).
    :param connection_status: keep companies with at least one data connection in this status (default
        ``Linked``: only those can sync); ``None`` keeps every company.
    :param codat_conn_id: the Airflow connection id.
    """

    template_fields: Sequence[str] = ("query", "tags", "connection_status")
    ui_color = "#cfe3f5"

    def __init__(
        self,
        *,
        query: str | None = None,
        tags: str | None = None,
        connection_status: str | None = "Linked",
        codat_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.query = query
        self.tags = tags
        self.connection_status = connection_status
        self.codat_conn_id = codat_conn_id

    def execute(self, context: Context) -> list[str]:
        status = self.connection_status or None
        if status is not None and status not in CONNECTION_STATUSES:
            raise ValueError(f"connection_status must be one of {', '.join(CONNECTION_STATUSES)} or None.")
        ids: list[str] = []
        seen = 0
        for company in self.hook.list_companies(query=self.query or None, tags=self.tags or None):
            seen += 1
            connections = company.get("dataConnections") or []
            if status is None or any(c.get("status") == status for c in connections):
                ids.append(str(company["id"]))
        self.log.info(
            "%s of %s Codat companies match (connection status: %s).", len(ids), seen, status or "any"
        )
        return ids
